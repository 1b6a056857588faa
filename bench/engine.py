"""The engine against the floor, interleaved in one run — `python -m bench.engine`.

The seven-step benchmark workflow (bench/worker.py) through the real engine on a real
nats-server: in this process (a `Worker` on its own connection, as tests run it), and in
one and in two worker processes (`python -m bench.worker`). Each runs on a server with
JetStream's default fsync and on one with `sync_interval: always`, next to the floor
(bench/floor.py) on the same server, at 1 and at 50 instances in flight.

Instances are started as the floor starts its runs: a run message published straight
to the workflow's run subject, with a message id. An instance is complete when its record
is written with status "complete" (the floor: when its status put is acknowledged).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bench.floor import COMPLETION_TIMEOUT, Floor, floor_ratios
from bench.harness import (
    One,
    Plan,
    Results,
    delete_namespace,
    emit,
    environment,
    namespace,
    nats_servers,
    parser,
    peak_rss_mb,
    progress,
    ratio,
    run_main,
    run_plan,
    summarise_all,
)
from bench.report import ratio_lines, table
from bench.worker import REGISTRY, WORKFLOW_ID
from shared.bus import Names, publish
from shared.config import EngineSettings
from shared.workflow import InstanceState, Worker, ensure_consumers, ensure_topology
from shared.workflow.model import RunMessage, encode
from shared.workflow.store import InstanceStore

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKER_CONCURRENCY = 64  # above the 50 in flight, as the floor's fetch loop
ASYNCIO = {"EVENT_LOOP": "asyncio"}


# BENCH_SEALED=1: every instance belongs to one of 50 users and its record is sealed with
# that user's data key (shared/crypto.py), to measure what encryption costs the engine.
SEALED = os.environ.get("BENCH_SEALED") == "1"
BENCH_MASTER = "bench:" + "QkVOQ0hCRU5DSEJFTkNIQkVOQ0hCRU5DSEJFTkNIISE"


def bench_settings(ns: str, concurrency: int = WORKER_CONCURRENCY) -> EngineSettings:
    return EngineSettings(
        howlerhire_namespace=ns,
        worker_concurrency=concurrency,
        stream_max_bytes=1024**3,
        dedup_window=120.0,
        shutdown_grace=5.0,
        data_master_keys=BENCH_MASTER if SEALED else "",
    )


class _SignallingStore(InstanceStore):
    """The worker's store, telling the benchmark when a record is written complete."""

    def __init__(self, store: InstanceStore, on_complete: Callable[[str], None]) -> None:
        # The same store (its index, retention, keys, inbox), with a hook on its writes.
        self.__dict__.update(store.__dict__)
        self._on_complete = on_complete

    async def update(self, state: InstanceState, revision: int) -> int:
        written = await super().update(state, revision)
        if state.status == "complete":
            self._on_complete(state.instance_id)
        return written


class SignallingWorker(Worker):
    """A `Worker` whose completions resolve the benchmark's futures (no polling, no watch)."""

    def __init__(self, *args: Any, on_complete: Callable[[str], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_complete = on_complete

    async def setup(self) -> None:
        await super().setup()
        assert self.store is not None
        assert self._execution is not None
        self.store = _SignallingStore(self.store, self._on_complete)
        # The execution holds the store it was made with: give it the signalling one too
        # (without this no completion was ever signalled and the in-process runs timed out).
        self._execution.store = self.store


def _resolve(waiters: dict[str, asyncio.Future[None]], iid: str) -> None:
    done = waiters.pop(iid, None)
    if done is not None and not done.done():
        done.set_result(None)


def starter(nc: NATS, ns: str, waiters: dict[str, asyncio.Future[None]]) -> One:
    """`one()`: publish a start message for a new instance and wait for its completion."""
    js = nc.jetstream()
    subject = Names(ns).run_subject(WORKFLOW_ID)
    loop = asyncio.get_running_loop()

    async def one() -> None:
        iid = uuid.uuid4().hex
        done = loop.create_future()
        waiters[iid] = done
        params = {"userId": f"bench-user-{int(iid[:4], 16) % 50}"} if SEALED else {}
        message = encode(RunMessage(kind="start", instance_id=iid, params=params))
        await publish(js, subject, message, msg_id=f"start:{WORKFLOW_ID}:{iid}:0")
        await asyncio.wait_for(done, COMPLETION_TIMEOUT)

    return one


async def prepare(nc: NATS, settings: EngineSettings) -> None:
    """Streams, buckets and consumers first, so that no start message is published unseen."""
    js = nc.jetstream()
    names = Names(settings.howlerhire_namespace)
    await ensure_topology(
        js, names, max_bytes=settings.stream_max_bytes, dedup_window=settings.dedup_window
    )
    await ensure_consumers(js, names, REGISTRY, settings)


@dataclass
class EngineInProcess:
    """A Worker in this process, on its own connection; one namespace per session."""

    url: str
    name: str

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        ns = namespace("be")
        settings = bench_settings(ns)
        driver = await nats.connect(self.url, name="bench-engine-driver")
        worker_nc = await nats.connect(self.url, name="bench-engine-worker")
        await prepare(driver, settings)
        waiters: dict[str, asyncio.Future[None]] = {}
        worker = SignallingWorker(
            worker_nc, REGISTRY, None, settings, on_complete=lambda iid: _resolve(waiters, iid)
        )
        running = asyncio.create_task(worker.run())
        try:
            yield starter(driver, ns, waiters)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 30)
            await worker_nc.drain()
            await delete_namespace(driver.jetstream(), ns)
            await driver.close()


@dataclass
class EngineProcesses:
    """`procs` worker processes (`python -m bench.worker`), started once for the whole run.

    Their namespace lives as long as they do; every measurement ends with nothing in
    flight, so measurements do not overlap. Completion is seen on the KV bucket's
    subject: a plain subscription receives every record write, and the record's top-level
    status is its first `"status"` field.
    """

    url: str
    name: str
    procs: int
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. EVENT_LOOP
    rss_mb: list[float | None] = field(default_factory=list)
    _one: One | None = None

    @contextlib.asynccontextmanager
    async def lifetime(self) -> AsyncIterator[None]:
        ns = namespace("bp")
        settings = bench_settings(ns)
        driver = await nats.connect(self.url, name="bench-engine-driver")
        await prepare(driver, settings)
        waiters: dict[str, asyncio.Future[None]] = {}

        async def on_write(msg: Msg) -> None:
            data = msg.data
            at = data.find(b'"status":"')
            if at >= 0 and data.startswith(b"complete", at + 10):
                _resolve(waiters, msg.subject.rsplit(".", 1)[1])

        bucket = Names(ns).state_bucket
        sub = await driver.subscribe(f"$KV.{bucket}.{WORKFLOW_ID}.>", cb=on_write)
        logs = Path(tempfile.mkdtemp(prefix="bench-worker-"))
        env = {
            **os.environ,
            "NATS_URL": self.url,
            "HOWLERHIRE_NAMESPACE": ns,
            "WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            "DEDUP_WINDOW": "120",
            "STREAM_MAX_BYTES": str(1024**3),
            "DURABILITY": "any",
            "NATS_MONITOR_URL": "",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "DATA_MASTER_KEYS": BENCH_MASTER if SEALED else "",
            **self.extra_env,
        }
        workers = []
        for i in range(self.procs):
            with open(logs / f"worker-{i}.log", "ab") as out:
                workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.worker"],
                        cwd=REPO_ROOT,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        self._one = starter(driver, ns, waiters)
        try:
            await self._one()  # ready: one instance went through
            yield
            self.rss_mb = [peak_rss_mb(w.pid) for w in workers]
        finally:
            for w in workers:
                w.send_signal(signal.SIGTERM)
            for w in workers:
                try:
                    await asyncio.to_thread(w.wait, 30)
                except subprocess.TimeoutExpired:
                    w.kill()
            await sub.unsubscribe()
            await delete_namespace(driver.jetstream(), ns)
            await driver.close()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        assert self._one is not None, "session() outside lifetime()"
        yield self._one


def contenders_for(urls: dict[str, str], quick: bool) -> tuple[list[Any], dict[str, set[str]]]:
    contenders: list[Any] = []
    skip: dict[str, set[str]] = {}
    for profile, url in urls.items():
        contenders += [
            Floor(url, f"floor/{profile}"),
            Floor(url, f"floor-engine-calls/{profile}", calls="engine"),
            EngineInProcess(url, f"engine/{profile}"),
            EngineProcesses(url, f"engine-1proc/{profile}", 1),
            EngineProcesses(url, f"engine-2proc/{profile}", 2),
        ]
        if not quick:  # the event loop before uvloop became the workers' default
            contenders += [
                EngineProcesses(url, f"engine-1proc-asyncio/{profile}", 1, ASYNCIO),
                EngineProcesses(url, f"engine-2proc-asyncio/{profile}", 2, ASYNCIO),
            ]
        # Latency (c1) is measured in-process: the worker processes are about throughput,
        # and their c1 carries the fetch loop's first-pickup delay (up to FETCH_TIMEOUT).
        for name in (
            "engine-1proc",
            "engine-2proc",
            "engine-1proc-asyncio",
            "engine-2proc-asyncio",
            "floor-engine-calls",
        ):
            skip[f"{name}/{profile}"] = {"c1"}
    return contenders, skip


def engine_ratios(results: Results, profiles: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in profiles:
        for engine in (
            "engine",
            "engine-1proc",
            "engine-2proc",
            "engine-1proc-asyncio",
            "engine-2proc-asyncio",
        ):
            out[f"{engine}_over_floor_c50/{p}"] = ratio(
                results, f"{engine}/{p}", f"floor/{p}", "c50"
            )
        out[f"floor-engine-calls_over_floor_c50/{p}"] = ratio(
            results, f"floor-engine-calls/{p}", f"floor/{p}", "c50"
        )
        out[f"engine_over_floor-engine-calls_c50/{p}"] = ratio(
            results, f"engine/{p}", f"floor-engine-calls/{p}", "c50"
        )
        out[f"engine_p50_over_floor_p50_c1/{p}"] = ratio(
            results, f"engine/{p}", f"floor/{p}", "c1", "p50_ms"
        )
    if "sync-always" in profiles and "sync-default" in profiles:
        for level in ("c1", "c50"):
            out[f"engine_sync_always_over_default_{level}"] = ratio(
                results, "engine/sync-always", "engine/sync-default", level
            )
    out.update(floor_ratios(results, profiles))
    return {k: v for k, v in out.items() if v is not None}


def targets(ratios: dict[str, Any], profiles: list[str]) -> dict[str, Any]:
    """Issue 18's targets, per server profile: value (median over rounds) and met.

    One worker process at 50 in flight >= 0.8 x the floor, two >= 1.0 x (the floor is one
    process too), p50 at 1 in flight <= 1.2 x the floor's. The in-process engine is
    stated beside the worker processes; the workers' default loop (uvloop) counts.
    """
    out: dict[str, Any] = {}

    def best(*names: str) -> float | None:
        values = [ratios[n]["median"] for n in names if n in ratios]
        return max(values) if values else None

    for p in profiles:
        one = best(f"engine-1proc_over_floor_c50/{p}")
        two = best(f"engine-2proc_over_floor_c50/{p}")
        lat = ratios.get(f"engine_p50_over_floor_p50_c1/{p}")
        if one is not None:
            out[f"1 worker process >= 0.8 x floor wf/s at c50 ({p})"] = {
                "value": one,
                "met": one >= 0.8,
            }
        if two is not None:
            out[f"2 worker processes >= 1.0 x floor wf/s at c50 ({p})"] = {
                "value": two,
                "met": two >= 1.0,
            }
        if lat:
            out[f"engine p50 <= 1.2 x floor p50 at c1 ({p})"] = {
                "value": lat["median"],
                "met": lat["median"] <= 1.2,
            }
    return out


async def main_async(args: Any) -> dict[str, Any]:
    rounds = args.rounds or (2 if args.quick else 5)
    duration = args.duration or (0.8 if args.quick else 4.0)
    with nats_servers(args.nats_url, ["sync-default", "sync-always"]) as urls:
        contenders, skip = contenders_for(urls, args.quick)
        plan = Plan(contenders, {"c1": 1, "c50": 50}, duration, rounds, skip)
        async with contextlib.AsyncExitStack() as stack:
            for c in contenders:
                if hasattr(c, "lifetime"):
                    await stack.enter_async_context(c.lifetime())
            results = await run_plan(plan, progress)
        profiles = list(urls)
    configs = summarise_all(results)
    ratios = engine_ratios(results, profiles)
    main = configs[f"engine/{'external' if args.nats_url else 'sync-always'}"]
    rss = {c.name: c.rss_mb for c in contenders if isinstance(c, EngineProcesses)}
    print(table(configs))
    print(ratio_lines(ratios))
    return {
        "bench": "engine",
        "quick": args.quick,
        **main,
        "configs": configs,
        "ratios": ratios,
        "targets": targets(ratios, profiles),
        "worker_peak_rss_mb": rss,
        "env": environment(),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    result = run_main(lambda: main_async(args), args.loop)
    result["env"]["loop"] = args.loop
    emit(result)


if __name__ == "__main__":
    main()
