"""Offline parse speed: documents per second, p95 per document, and event-loop lag meanwhile.

`python -m bench.parsing_speed [--rounds N] [--concurrency C]` runs what the offline
parse-and-structure step runs (text extraction in a worker thread, then the rule-based
structurer) over every resume in ../shared/fixtures/resumes/, `rounds` times, `C` at a
time (in a thread, or with `--processes N` in a process pool as the service does),
while a ticker on the event loop measures how late it wakes (what a heartbeat or
another run on the same worker would see).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from shared.ai.heuristics import parse_resume
from shared.documents import docx_text, extract_text, pdf_text, sniff_file_type

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "resumes"


async def _one(data: bytes, pool: Executor | None) -> float:
    kind = sniff_file_type(data)
    assert kind is not None
    started = time.perf_counter()
    if pool is None:
        text = await extract_text(data, kind)
    else:
        reader = pdf_text if kind == "pdf" else docx_text
        text = await asyncio.get_running_loop().run_in_executor(pool, reader, data)
    await asyncio.to_thread(parse_resume, text)
    return time.perf_counter() - started


async def run(rounds: int, concurrency: int, processes: int = 0) -> dict[str, float]:
    files = [p.read_bytes() for p in sorted(FIXTURES.iterdir())]
    work = [data for _ in range(rounds) for data in files]
    lags: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - before - 0.01)

    pool = ProcessPoolExecutor(processes, mp_context=get_context("spawn")) if processes else None
    if pool is not None:  # start the workers before measuring
        await asyncio.gather(
            *(
                asyncio.get_running_loop().run_in_executor(pool, docx_text, files[0])
                for _ in range(processes)
            )
        )
    tick = asyncio.create_task(ticker())
    gate = asyncio.Semaphore(concurrency)

    async def bounded(data: bytes) -> float:
        async with gate:
            return await _one(data, pool)

    started = time.perf_counter()
    times = await asyncio.gather(*(bounded(d) for d in work))
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    if pool is not None:
        pool.shutdown()
    ordered = sorted(times)
    return {
        "documents": len(work),
        "docs_per_s": len(work) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": ordered[int(0.95 * (len(ordered) - 1))] * 1000,
        "max_ms": ordered[-1] * 1000,
        "loop_lag_p99_ms": sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000,
        "loop_lag_max_ms": max(lags) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="one round (make bench)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument(
        "--processes", type=int, default=0, help="extract in a process pool (0: a thread)"
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    result = asyncio.run(run(args.rounds, args.concurrency, args.processes))
    where = f"{args.processes} processes" if args.processes else "a thread"
    print(
        f"{result['documents']:.0f} documents, concurrency {args.concurrency}, {where}: "
        f"{result['docs_per_s']:.1f} docs/s, p50 {result['p50_ms']:.0f} ms, "
        f"p95 {result['p95_ms']:.0f} ms, max {result['max_ms']:.0f} ms; event-loop lag "
        f"p99 {result['loop_lag_p99_ms']:.1f} ms, max {result['loop_lag_max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
