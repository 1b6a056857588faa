"""A new instance beside N sleeping ones, against an empty system — `python -m bench.sleepers`.

Two nats-servers (`sync_interval: always`): one empty, one holding N instances parked in
a durable sleep of an hour in the namespace the new instances run in (their records in
the same bucket, N pending message schedules in its `<ns>_timers` stream). One sleeper is
parked through the engine (a step, then `ctx.sleep`); the other N - 1 are copies of its
record and its schedule under new instance ids, published straight to the bucket's and
the timer stream's subjects (as the worker writes them), so that 100,000 are parked in
seconds rather than minutes. A copy's index entry is not written (lists would not show
it; a new instance's path never reads them).

Then a seven-step instance at a time (c1) on each server through an in-process worker of
that namespace, interleaved in rounds: p50 beside N sleepers over p50 on the empty
server. nats-server's resident memory and its store's disk use are stated for both.
`--quick`: 5,000 sleepers; full: 100,000 (`--sleepers`). Last line: one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nats

from bench.engine import SignallingWorker, bench_settings, prepare, starter
from bench.harness import (
    One,
    Plan,
    emit,
    environment,
    parser,
    peak_rss_mb,
    progress,
    ratio,
    run_main,
    run_plan,
    summarise_all,
)
from bench.report import table
from bench.worker import REGISTRY, SLEEPER_ID
from shared.bus import Names, publish
from shared.embedded import NatsServer
from shared.workflow.model import RunMessage, encode

TARGET = 1.2


def rss_mb(pid: int) -> float | None:
    """A process's current resident set size (VmRSS), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def disk_mb(folder: Path) -> float:
    return round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1024**2, 1)


@dataclass
class EngineIn:
    """An in-process worker on one fixed namespace (kept across sessions)."""

    url: str
    name: str
    ns: str

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        settings = bench_settings(self.ns)
        driver = await nats.connect(self.url, name="bench-sleepers-driver")
        worker_nc = await nats.connect(self.url, name="bench-sleepers-worker")
        waiters: dict[str, asyncio.Future[None]] = {}

        def done(iid: str) -> None:
            future = waiters.pop(iid, None)
            if future is not None and not future.done():
                future.set_result(None)

        worker = SignallingWorker(worker_nc, REGISTRY, None, settings, on_complete=done)
        running = asyncio.create_task(worker.run())
        try:
            yield starter(driver, self.ns, waiters)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 30)
            await worker_nc.drain()
            await driver.close()


async def park(url: str, ns: str, count: int) -> dict[str, Any]:
    """One sleeper through the engine, then `count - 1` copies of its record and schedule."""
    settings = bench_settings(ns)
    nc = await nats.connect(url, name="bench-sleepers-park")
    js = nc.jetstream()
    names = Names(ns)
    await prepare(nc, settings)
    worker_nc = await nats.connect(url, name="bench-sleepers-park-worker")
    worker = SignallingWorker(worker_nc, REGISTRY, None, settings, on_complete=lambda iid: None)
    running = asyncio.create_task(worker.run())
    original = uuid.uuid4().hex
    message = encode(RunMessage(kind="start", instance_id=original, params={}))
    await publish(js, names.run_subject(SLEEPER_ID), message, msg_id=f"start:{original}")
    bucket = f"KV_{names.state_bucket}"
    try:
        for _ in range(600):
            timers = await js.stream_info(names.timer_stream)
            if timers.state.messages >= 1 and worker.processed >= 1:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("the first sleeper did not park in 30 s")
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
        await worker_nc.drain()
    record = await js.get_last_msg(bucket, f"$KV.{names.state_bucket}.{SLEEPER_ID}.{original}")
    timer = await js.get_msg(names.timer_stream, seq=timers.state.last_seq)
    assert record.data
    assert b'"sleeping"' in record.data, record.data
    assert timer.subject
    assert original in timer.subject
    began = time.perf_counter()
    headers = {k: v for k, v in (timer.headers or {}).items() if not k.startswith("Nats-Stream")}
    old = original.encode()
    for n in range(count - 1):
        iid = uuid.uuid4().hex
        new = iid.encode()
        await nc.publish(record.subject.replace(original, iid), record.data.replace(old, new))
        await nc.publish(
            timer.subject.replace(original, iid),
            (timer.data or b"").replace(old, new),
            headers=headers,
        )
        if n % 2000 == 1999:
            await nc.flush()
    await nc.flush()
    for _ in range(1200):  # core publishes: wait until the streams hold them all
        kv_info = await js.stream_info(bucket)
        timers = await js.stream_info(names.timer_stream)
        if kv_info.state.messages >= count and timers.state.messages >= count:
            break
        await asyncio.sleep(0.05)
    else:
        raise RuntimeError(f"parked {kv_info.state.messages} records, {timers.state.messages}")
    seconds = time.perf_counter() - began
    await nc.close()
    return {
        "sleepers": count,
        "records": kv_info.state.messages,
        "pending_schedules": timers.state.messages,
        "copied_in_s": round(seconds, 1),
    }


async def main_async(args: Any) -> dict[str, Any]:
    count = args.sleepers or (5_000 if args.quick else 100_000)
    rounds = args.rounds or (3 if args.quick else 5)
    duration = args.duration or (2.0 if args.quick else 4.0)
    root = Path(tempfile.mkdtemp(prefix="howlerhire-bench-sleepers-"))
    empty = NatsServer(root / "empty", sync_always=True).start()
    full = NatsServer(root / "sleepers", sync_always=True).start()
    try:
        ns_empty, ns_full = "bse", "bss"
        nc = await nats.connect(empty.url)
        await prepare(nc, bench_settings(ns_empty))
        await nc.close()
        progress(f"parking {count} sleepers")
        parked = await park(full.url, ns_full, count)
        progress(f"parked: {parked}")
        servers = {
            name: {
                "rss_mb": rss_mb(s.proc.pid) if s.proc else None,
                "disk_mb": disk_mb(s.store_dir),
            }
            for name, s in (("empty", empty), ("sleepers", full))
        }
        contenders = [
            EngineIn(empty.url, "new-instance/empty", ns_empty),
            EngineIn(full.url, f"new-instance/beside-{count}-sleepers", ns_full),
        ]
        results = await run_plan(Plan(contenders, {"c1": 1}, duration, rounds), progress)
        servers["sleepers"]["peak_rss_mb"] = peak_rss_mb(full.proc.pid) if full.proc else None
    finally:
        empty.stop()
        full.stop()
        shutil.rmtree(root, ignore_errors=True)
    configs = summarise_all(results)
    p50 = ratio(results, contenders[1].name, contenders[0].name, "c1", "p50_ms")
    print(table(configs))
    print(f"p50 beside {count} sleepers / empty: {p50}; servers: {servers}")
    return {
        "bench": "sleepers",
        "quick": args.quick,
        "parked": parked,
        "configs": configs,
        "ratios": {"p50_beside_sleepers_over_empty_c1": p50},
        "servers": servers,
        "targets": {
            f"new instance p50 beside {count} sleepers <= {TARGET} x empty": {
                "value": p50["median"] if p50 else None,
                "met": bool(p50 and p50["median"] <= TARGET),
            }
        },
        "env": environment(),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sleepers", type=int, help="sleeping instances (default 100,000)")
    args = p.parse_args()
    emit(run_main(lambda: main_async(args), args.loop))


if __name__ == "__main__":
    main()
