"""Scale: reads among many instances, a new run among many sleeping ones: `bench.scale`.

1. The instance bucket is filled with completed seven-step records (written through the
   instance store, as the worker writes them: record plus list-index entries) up to
   1,000, 10,000 and 100,000 (`--quick`: 10,000), 100 per user, each size in its own
   namespace; then rounds measure every size in turn. Latency of a status read
   (`Instances.get`) and of a list page (`Instances.list(workflow, limit=50)`: the first,
   one from the middle, with a status filter, one user's), and the storage per instance
   (bucket and index stream bytes over instances). Flat means the largest size's p50
   stays within 1.5x of the smallest's.
2. 10,000 instances (`--quick`: 1,000) are parked in a durable sleep through the engine
   (a step, then `ctx.sleep` for an hour: one message schedule each). Then new
   seven-step instances run one at a time: their latency against the same measured
   before the sleepers existed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import nats

from bench.engine import SignallingWorker, bench_settings, prepare, starter
from bench.harness import (
    closed_loop,
    delete_namespace,
    emit,
    environment,
    namespace,
    nats_servers,
    parser,
    percentile,
    progress,
)
from bench.worker import REGISTRY, SLEEPER_ID, WORKFLOW_ID
from shared.bus import Names, publish
from shared.workflow import Instances, InstanceState, StepRecord
from shared.workflow.model import RunMessage, encode
from shared.workflow.store import InstanceStore

ROUTES = {WORKFLOW_ID: (), SLEEPER_ID: ()}


PER_USER = 100  # instances per user: a user's page is a full page at every size


def completed_record(iid: str, n: int = 0, users: int = 1) -> InstanceState:
    at = datetime.now(UTC)
    steps = [
        StepRecord(
            seq=n - 1,
            name=f"step-{n}",
            status="complete",
            attempts=1,
            started_at=at,
            ended_at=at,
            result={"step": n, "ok": True, "value": n * 7},
        )
        for n in range(1, 8)
    ]
    return InstanceState(
        workflow=WORKFLOW_ID,
        instance_id=iid,
        status="complete",
        params={"userId": f"user-{n % users}"},
        output=steps[-1].result,
        created_at=at,
        started_at=at,
        ended_at=at,
        updated_at=at,
        steps=steps,
    )


async def fill(store: InstanceStore, ids: list[str], count: int, parallel: int = 128) -> float:
    """Write `count` more completed records (and their index entries); records per second."""
    started = time.perf_counter()
    base = len(ids)
    queue = [uuid.uuid4().hex for _ in range(count)]
    ids.extend(queue)

    users = max(1, (base + count) // PER_USER)

    async def writer(offset: int) -> None:
        for n in range(offset, count, parallel):
            await store.create(completed_record(queue[n], base + n, users))

    await asyncio.gather(*(writer(i) for i in range(parallel)))
    return count / (time.perf_counter() - started)


async def reads_at_sizes(
    url: str, sizes: list[int], samples: int, rounds: int = 3
) -> dict[str, Any]:
    """Each size in a namespace of its own, filled first; then `rounds` rounds measure
    every size in turn (the order rotating), so a burst of load hits all sizes alike."""
    nc = await nats.connect(url, name="bench-scale")
    js = nc.jetstream()
    spaces: dict[int, tuple[Instances, list[str], int]] = {}
    out: dict[str, Any] = {}
    lat: dict[tuple[int, str], list[float]] = {}
    try:
        for size in sizes:
            instances = Instances(nc, Names(namespace("bs")), ROUTES)
            ids: list[str] = []
            rate = await fill(await instances.store(), ids, size)
            index = await js.stream_info(f"{instances.names.namespace}_index")
            bucket = await js.stream_info(f"KV_{instances.names.state_bucket}")
            out[str(size)] = {
                "fill_records_per_s": round(rate, 1),
                "bytes_per_instance": {
                    "record": round(bucket.state.bytes / size),
                    "index": round(index.state.bytes / size),
                },
            }
            spaces[size] = (instances, ids, index.state.last_seq // 2)
            progress(f"{size:>7} completed instances written ({rate:.0f}/s)")
        await asyncio.sleep(2.0)  # the server's flushes settle before timing
        per_round = max(10, samples // rounds)
        for r in range(rounds):
            order = sizes[r % len(sizes) :] + sizes[: r % len(sizes)]
            for size in order:
                instances, ids, middle = spaces[size]
                users = max(1, size // PER_USER)
                picks = iter(ids[(i * 7919) % len(ids)] for i in range(per_round))
                who = iter(f"user-{(i * 7) % users}" for i in range(per_round))

                async def get(instances: Instances = instances, picks: Any = picks) -> None:
                    await instances.get(WORKFLOW_ID, next(picks))

                async def page(instances: Instances = instances) -> None:
                    await instances.list(workflow=WORKFLOW_ID, limit=50)

                async def deep(instances: Instances = instances, middle: int = middle) -> None:
                    await instances.list(workflow=WORKFLOW_ID, limit=50, cursor=middle)

                async def filtered(instances: Instances = instances) -> None:
                    await instances.list(workflow=WORKFLOW_ID, status="complete", limit=50)

                async def user(instances: Instances = instances, who: Any = who) -> None:
                    await instances.list(user=next(who), limit=50)

                for key, call, n in (
                    ("status_read", get, per_round),
                    ("list_page", page, per_round // 2),
                    ("list_page_middle", deep, per_round // 2),
                    ("list_page_status_filter", filtered, per_round // 2),
                    ("list_page_user", user, per_round // 2),
                ):
                    lat.setdefault((size, key), []).extend(await samples_of(n, call))
            progress(f"round {r + 1}/{rounds} measured")
    finally:
        for instances, _, _ in spaces.values():
            await delete_namespace(js, instances.names.namespace)
        await nc.close()
    keys = sorted({key for _, key in lat})
    for (size, key), values in lat.items():
        out[str(size)][key] = {
            "p50_ms": round(percentile(values, 50), 3),
            "p99_ms": round(percentile(values, 99), 3),
        }
    for size in sizes:
        progress(f"{size:>7}: {out[str(size)]}")
    first, last = out[str(sizes[0])], out[str(sizes[-1])]
    out["flatness_p50_largest_over_smallest"] = {
        key: round(last[key]["p50_ms"] / first[key]["p50_ms"], 3) for key in keys
    }
    return out


async def samples_of(count: int, call: Any) -> list[float]:
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - began) * 1000)
    return latencies


async def beside_sleepers(url: str, sleepers: int, duration: float) -> dict[str, Any]:
    ns = namespace("bz")
    settings = bench_settings(ns)
    driver = await nats.connect(url, name="bench-scale-driver")
    worker_nc = await nats.connect(url, name="bench-scale-worker")
    await prepare(driver, settings)
    waiters: dict[str, asyncio.Future[None]] = {}

    def done(iid: str) -> None:
        future = waiters.pop(iid, None)
        if future is not None and not future.done():
            future.set_result(None)

    worker = SignallingWorker(worker_nc, REGISTRY, None, settings, on_complete=done)
    running = asyncio.create_task(worker.run())
    one = starter(driver, ns, waiters)
    try:
        await closed_loop(one, 1, 0.5)
        before = (await closed_loop(one, 1, duration)).figures(steps=0)
        progress(f"new instance, no sleepers: {before}")
        js = driver.jetstream()
        subject = Names(ns).run_subject(SLEEPER_ID)
        base = worker.processed
        started = time.perf_counter()
        queue = [uuid.uuid4().hex for _ in range(sleepers)]

        async def starts(chunk: list[str]) -> None:
            for iid in chunk:
                message = encode(RunMessage(kind="start", instance_id=iid, params={}))
                await publish(js, subject, message, msg_id=f"start:{SLEEPER_ID}:{iid}:0")

        await asyncio.gather(*(starts(queue[i::64]) for i in range(64)))
        while worker.processed < base + sleepers:
            await asyncio.sleep(0.1)
        parked_per_s = sleepers / (time.perf_counter() - started)
        progress(f"{sleepers} sleepers parked ({parked_per_s:.0f}/s)")
        after = (await closed_loop(one, 1, duration)).figures(steps=0)
        progress(f"new instance beside {sleepers} sleepers: {after}")
        timers = await js.stream_info(Names(ns).timer_stream)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 30)
        await worker_nc.drain()
        await delete_namespace(driver.jetstream(), ns)
        await driver.close()
    return {
        "sleepers": sleepers,
        "parked_per_s": round(parked_per_s, 1),
        "pending_schedules": timers.state.messages,
        "new_instance_before": before,
        "new_instance_beside_sleepers": after,
        "p50_ratio": round(after["p50_ms"] / before["p50_ms"], 3),
    }


async def main_async(args: Any) -> dict[str, Any]:
    sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    sleepers = 300 if args.quick else 10_000  # at 100k: bench.sleepers
    duration = args.duration or (2.0 if args.quick else 5.0)
    with nats_servers(args.nats_url, ["sync-always"]) as urls:
        url = next(iter(urls.values()))
        reads = await reads_at_sizes(
            url, sizes, 100 if args.quick else 400, args.rounds or (2 if args.quick else 3)
        )
        sleeping = await beside_sleepers(url, sleepers, duration)
    return {
        "bench": "scale",
        "quick": args.quick,
        "completed_instances": reads,
        "sleeping_instances": sleeping,
        "env": environment(),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
