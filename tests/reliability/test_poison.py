"""RELIABILITY R7: a poison run whose step raises on every delivery, beside 100 healthy
runs: `max_deliver` 5 with backoff [0.2, 0.4, 0.8, 1.6] s; the poison is delivered
exactly 5 times and dead-lettered within 10 s of the server's max-deliveries advisory;
the healthy runs all complete with p95 latency ≤ 2x a baseline measured first in the
same test; total deliveries ≤ 105 + 5. Beside it, a run whose step raises an ordinary
exception errors after its retries, never redelivered.

A step's ordinary exception is retried inside its delivery and ends the run errored (no
redelivery: `test_engine.py` retry tests). What makes a *message* poison is a raise the
engine cannot turn into a result: here `CancelledError` escaping a step (what a leaked
cancel scope or a library's own cancellation raises), which the worker hands back with a
nak, as on a shutdown, delivery after delivery.
"""

from __future__ import annotations

import asyncio
import statistics
from typing import Any

import pytest

from shared.bus import Names
from shared.workflow import Context, Registry, RetryPolicy, workflow
from shared.workflow.topology import advisory_subject
from tests.support.engine import engine_settings, prepare, running_worker, wait_all

MAX_DELIVER = 5
# ack_wait 0.2 s gives the poison's consumer the stated backoff (ack_wait doubling).
POISON_BACKOFF = [0.2, 0.4, 0.8, 1.6]


async def always_raises(run: str) -> str:
    raise asyncio.CancelledError(f"poison {run}")


async def fails(run: str) -> str:
    raise RuntimeError(f"bad input in {run}")


async def work(n: int) -> int:
    await asyncio.sleep(0.2)
    return n


@workflow("poison")
async def poison(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("boom", always_raises, ctx.instance_id)


@workflow("healthy")
async def healthy(ctx: Context[None], params: dict[str, Any]) -> list[int]:
    return [await ctx.step(f"s-{i}", work, i) for i in range(2)]


@workflow("failing", retry=RetryPolicy(limit=2, delay=0.1))
async def failing(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("boom", fails, ctx.instance_id)


POISON, HEALTHY = Registry([poison, failing]), Registry([healthy])


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


async def healthy_batch(instances: Any, tag: str, runs: int) -> tuple[list[float], float]:
    ids = [f"{tag}{i}" for i in range(runs)]
    await asyncio.gather(*(instances.trigger("healthy", {}, i) for i in ids))
    states, took = await wait_all(instances, "healthy", ids, timeout=180)
    done = sum(s.status == "complete" for s in states)
    assert done == runs, f"{tag}: {done}/{runs} healthy runs complete"
    return [(s.ended_at - s.created_at).total_seconds() for s in states], took


@pytest.mark.parametrize("runs", [pytest.param(100, id="100-runs")])
async def test_r7_poison_step_is_dead_lettered_and_spares_the_healthy_runs(
    nc, nats_url, prefix, runs
):
    names = Names(prefix)
    js = nc.jetstream()
    poison_settings = engine_settings(prefix, ack_wait=0.2, max_deliver=MAX_DELIVER)
    healthy_settings = engine_settings(prefix, ack_wait=2.0, max_deliver=MAX_DELIVER)
    poison_instances = await prepare(nc, POISON, poison_settings)
    instances = await prepare(nc, HEALTHY, healthy_settings)
    config = (await js.consumer_info(names.stream, names.consumer("poison"))).config
    assert config.backoff == POISON_BACKOFF and config.max_deliver == MAX_DELIVER, config
    loop = asyncio.get_running_loop()
    advised: list[float] = []

    async def on_advisory(msg: Any) -> None:
        advised.append(loop.time())

    sub = await nc.subscribe(advisory_subject(names, "poison"), cb=on_advisory)
    async with (
        running_worker(nats_url, POISON, poison_settings),
        running_worker(nats_url, HEALTHY, healthy_settings),
    ):
        baseline, base_took = await healthy_batch(instances, "b", runs)
        before = (await js.consumer_info(names.stream, names.consumer("healthy"))).delivered
        await poison_instances.trigger("poison", {}, "poison")
        await poison_instances.trigger("failing", {}, "failing")
        mixed, mixed_took = await healthy_batch(instances, "h", runs)
        deadline = loop.time() + 60
        while not (await js.stream_info(names.dlq_stream)).state.messages:
            assert loop.time() < deadline, f"no dead letter in 60 s; advisories at {advised}"
            await asyncio.sleep(0.05)
        lettered = loop.time()
        (state,), _ = await wait_all(poison_instances, "poison", ["poison"], timeout=30)
        after = (await js.consumer_info(names.stream, names.consumer("healthy"))).delivered
        poisoned = await js.consumer_info(names.stream, names.consumer("poison"))
        (failed,), _ = await wait_all(poison_instances, "failing", ["failing"], timeout=30)
        raised = await js.consumer_info(names.stream, names.consumer("failing"))
    await sub.unsubscribe()
    assert len(advised) == 1, f"{len(advised)} max-deliveries advisories"
    lag = lettered - advised[0]
    assert lag <= 10.0, f"dead letter {lag:.1f}s after the advisory (> 10 s)"
    assert poisoned.delivered.consumer_seq == MAX_DELIVER, (
        f"poison delivered {poisoned.delivered.consumer_seq} times, not {MAX_DELIVER}"
    )
    letters = await poison_instances.dead_letters("poison")
    assert [(d.instance_id, d.deliveries) for _, d in letters.items] == [("poison", MAX_DELIVER)]
    assert state.status == "errored" and state.error is not None, state
    assert state.error.name == "MaxDeliveriesExceeded", state.error
    # An ordinary exception is no poison: retried by the step's policy, then the run errors.
    assert failed.status == "errored" and failed.error is not None, failed
    assert failed.error.name == "RuntimeError" and failed.steps[0].attempts == 3, failed
    # Its retries may park on a wake message (a new message, not a redelivery).
    assert raised.num_redelivered == 0 and raised.delivered.consumer_seq <= 3, raised
    healthy_deliveries = after.consumer_seq - before.consumer_seq
    total = healthy_deliveries + poisoned.delivered.consumer_seq + raised.delivered.consumer_seq
    # 105 + 5: the 100 healthy runs, the failing one's (<= 3), slack, and the poison's 5.
    assert total <= runs + 5 + MAX_DELIVER, f"{total} deliveries (> {runs + 5 + MAX_DELIVER})"
    base95, mixed95 = p95(baseline), p95(mixed)
    assert mixed95 <= 2 * base95, (
        f"healthy p95 {mixed95:.2f}s with the poison > 2 x baseline {base95:.2f}s"
    )
    print(
        f"R7 {runs} runs: poison delivered {poisoned.delivered.consumer_seq}x, dead letter "
        f"{lag:.2f}s after the advisory; healthy p95 {mixed95:.2f}s vs baseline "
        f"{base95:.2f}s ({mixed_took:.1f}s / {base_took:.1f}s for the batch); total "
        f"deliveries {total} (healthy {healthy_deliveries}, "
        f"failing run {raised.delivered.consumer_seq})"
    )
