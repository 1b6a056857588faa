"""The floor: the benchmark workflow's work as raw nats-py calls — `python -m bench.floor`.

Per instance: publish a run message (with a message id), fetch it from a durable pull
consumer, seven KV puts (one per step result), a status put, an ack. That is the least
any engine on JetStream does for a durable seven-step run, so no engine can beat it. It
is measured on a server with JetStream's default fsync and on one with
`sync_interval: always`, interleaved, at 1 and at 50 instances in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    KeyValueConfig,
    StorageType,
    StreamConfig,
)
from nats.js.kv import KeyValue

from bench.harness import (
    One,
    Plan,
    delete_namespace,
    emit,
    environment,
    namespace,
    nats_servers,
    parser,
    progress,
    ratio,
    run_plan,
    summarise_all,
)
from bench.report import table
from bench.worker import small_step

CONCURRENCY = 64  # slots of the fetch loop, as the engine worker in the benchmark
MAX_BATCH = 16  # as the engine's fetch loop
COMPLETION_TIMEOUT = 60.0

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@dataclass
class Floor:
    """Raw JetStream calls doing a seven-step run's durable writes; one namespace per session.

    `calls="puts"` is the floor proper. `calls="engine"` makes the NATS calls the engine
    makes, in its order, without the engine's Python: read the record, create it, seven
    compare-and-set updates of the growing record, the final update, a double ack. The
    gap between the two is the price of the engine's protocol; the gap between the
    second and the engine is the price of its Python.
    """

    url: str
    name: str
    calls: str = "puts"

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        ns = namespace("bf")
        driver = await nats.connect(self.url, name="bench-floor-driver")
        worker = await nats.connect(self.url, name="bench-floor-worker")
        js, wjs = driver.jetstream(), worker.jetstream()
        stream, subject = f"{ns}_floor", f"{ns}.floor.runs"
        await js.add_stream(
            StreamConfig(
                name=stream,
                subjects=[f"{ns}.floor.>"],
                storage=StorageType.FILE,
                discard=DiscardPolicy.NEW,
                max_bytes=1024**3,
                duplicate_window=120.0,
            )
        )
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name="floor",
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.NEW,
                ack_wait=30.0,
                max_deliver=8,
                max_ack_pending=256,
            ),
        )
        kv = await wjs.create_key_value(
            KeyValueConfig(bucket=f"{ns}_floor", history=1, storage=StorageType.FILE)
        )
        waiters: dict[str, asyncio.Future[None]] = {}
        sub = await wjs.pull_subscribe_bind(durable="floor", stream=stream)
        pulling = asyncio.create_task(_pull_loop(sub, kv, waiters, self.calls))
        loop = asyncio.get_running_loop()

        async def one() -> None:
            iid = uuid.uuid4().hex
            done = loop.create_future()
            waiters[iid] = done
            message = _encode({"kind": "start", "instance_id": iid})
            await js.publish(subject, message, headers={"Nats-Msg-Id": f"start:{iid}"})
            await asyncio.wait_for(done, COMPLETION_TIMEOUT)

        try:
            yield one
        finally:
            pulling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pulling
            await delete_namespace(js, ns)
            await worker.close()
            await driver.close()


async def _puts(kv: KeyValue, msg: Msg, iid: str, signal: Callable[[], None]) -> None:
    for n in range(1, 8):
        await kv.put(f"{iid}.s{n}", _encode(await small_step(n)))
    await kv.put(iid, b'{"status":"complete"}')
    signal()
    await msg.ack()


async def _engine_calls(kv: KeyValue, msg: Msg, iid: str, signal: Callable[[], None]) -> None:
    key = f"bench7.{iid}"
    with contextlib.suppress(nats.js.errors.KeyNotFoundError):
        await kv.get(key)
    at = "2026-01-01T00:00:00.000000Z"
    steps: list[dict[str, Any]] = []
    record: dict[str, Any] = {
        "workflow": "bench7",
        "instance_id": iid,
        "status": "running",
        "params": {},
        "created_at": at,
        "started_at": at,
        "updated_at": at,
        "steps": steps,
    }
    revision = await kv.create(key, _encode(record))
    result: dict[str, Any] = {}
    for n in range(1, 8):
        result = await small_step(n)
        steps.append(
            {
                "seq": n - 1,
                "name": f"step-{n}",
                "status": "complete",
                "attempts": 1,
                "started_at": at,
                "ended_at": at,
                "result": result,
            }
        )
        revision = await kv.update(key, _encode(record), last=revision)
    record.update(status="complete", output=result, ended_at=at)
    await kv.update(key, _encode(record), last=revision)
    signal()
    await msg.ack_sync()


async def _pull_loop(
    sub: Any, kv: KeyValue, waiters: dict[str, asyncio.Future[None]], calls: str
) -> None:
    """The engine's fetch shape without the engine: as many messages as free slots."""
    slots = asyncio.Semaphore(CONCURRENCY)
    tasks: set[asyncio.Task[None]] = set()
    work = _engine_calls if calls == "engine" else _puts

    async def handle(msg: Msg) -> None:
        try:
            iid = _decode(msg.data)["instance_id"]

            def signal() -> None:
                done = waiters.pop(iid, None)
                if done is not None and not done.done():
                    done.set_result(None)

            await work(kv, msg, iid, signal)
        finally:
            slots.release()

    try:
        while True:
            await slots.acquire()
            batch = 1
            while batch < MAX_BATCH and not slots.locked():
                await slots.acquire()
                batch += 1
            msgs: list[Msg] = []
            try:
                msgs = await sub.fetch(batch, timeout=5.0)
            except (nats.errors.TimeoutError, TimeoutError):
                msgs = []
            finally:
                for _ in range(batch - len(msgs)):
                    slots.release()
            for msg in msgs:
                task = asyncio.create_task(handle(msg))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
    finally:
        for task in tasks:
            task.cancel()


def floor_ratios(results: Any, profiles: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if "sync-always" in profiles and "sync-default" in profiles:
        for level in ("c1", "c50"):
            out[f"floor_sync_always_over_default_{level}"] = ratio(
                results, "floor/sync-always", "floor/sync-default", level
            )
    return out


async def main_async(args: Any) -> dict[str, Any]:
    rounds = args.rounds or (3 if args.quick else 5)
    duration = args.duration or (1.5 if args.quick else 5.0)
    with nats_servers(args.nats_url, ["sync-default", "sync-always"]) as urls:
        contenders = [Floor(url, f"floor/{profile}") for profile, url in urls.items()]
        plan = Plan(contenders, {"c1": 1, "c50": 50}, duration, rounds)
        results = await run_plan(plan, progress)
        profiles = list(urls)
    configs = summarise_all(results)
    main = configs[f"floor/{'external' if args.nats_url else 'sync-always'}"]
    print(table(configs))
    return {
        "bench": "floor",
        "quick": args.quick,
        **main,
        "configs": configs,
        "ratios": floor_ratios(results, profiles),
        "env": environment(),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
