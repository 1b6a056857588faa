"""RELIABILITY R17: one run's results fill the instance bucket (its `max_bytes` reached)
while 50 other runs go on: that run fails with a named error in one delivery, no
redelivery and no dead letter; the others complete."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.js.api import KeyValueConfig, StorageType

from shared.bus import Names
from shared.workflow import Context, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_all

# The bucket holds 800 KB: the 50 small records (a few KB each) fit beside the hog's
# first 300 KB revision, and so does its failed record (about as big, written while the
# old revision still counts), but its second revision (600 KB beside the first) does not.
BUCKET_BYTES = 800_000
PART = 300_000


async def blob(part: int) -> str:
    return f"{part}:" + "x" * PART


async def small(n: int) -> dict[str, int]:
    await asyncio.sleep(0.05)
    return {"n": n}


@workflow("filler")
async def filler(ctx: Context[None], params: dict[str, Any]) -> list[str]:
    """Parts of 300 KB each, every one under the record limit, the run's record over
    the bucket's room from the second."""
    return [await ctx.step(f"part-{i}", blob, i) for i in range(3)]


@workflow("steady")
async def steady(ctx: Context[None], params: dict[str, Any]) -> list[dict[str, int]]:
    return [await ctx.step(f"s-{i}", small, i) for i in range(3)]


REGISTRY = Registry([filler, steady])


@pytest.mark.parametrize("others", [pytest.param(50, id="50-runs")])
async def test_r17_bucket_full_fails_one_run_clearly_and_spares_the_others(
    nc, nats_url, prefix, others
):
    names = Names(prefix)
    js = nc.jetstream()
    # Made before the topology, which uses an existing bucket as it is.
    await js.create_key_value(
        KeyValueConfig(
            bucket=names.state_bucket,
            history=1,
            storage=StorageType.FILE,
            max_bytes=BUCKET_BYTES,
            direct=True,
        )
    )
    settings = engine_settings(prefix, ack_wait=2.0, max_deliver=5)
    instances = await prepare(nc, REGISTRY, settings)
    ids = [f"o{i}" for i in range(others)]
    async with running_worker(nats_url, REGISTRY, settings):
        await instances.trigger("filler", {}, "hog")
        await asyncio.gather(*(instances.trigger("steady", {}, i) for i in ids))
        (hog,), _ = await wait_all(instances, "filler", ["hog"], timeout=60)
        states, took = await wait_all(instances, "steady", ids, timeout=120)
        hog_consumer = await js.consumer_info(names.stream, names.consumer("filler"))
        steady_consumer = await js.consumer_info(names.stream, names.consumer("steady"))
        dead = (await js.stream_info(names.dlq_stream)).state.messages
    done = sum(s.status == "complete" for s in states)
    assert done == others, f"{done}/{others} other runs complete in {took:.1f}s: " + str(
        [(s.instance_id, s.status, s.error) for s in states if s.status != "complete"][:3]
    )
    assert hog.status == "errored", (hog.status, hog.error)
    assert hog.error is not None and hog.error.name == "StepResultTooLargeError", hog.error
    assert "bucket is full" in hog.error.message, hog.error.message
    # Part 0 recorded; part 1, the one that did not fit, failed on its first attempt.
    assert [(s.name, s.status, s.attempts) for s in hog.steps] == [
        ("part-0", "complete", 1),
        ("part-1", "errored", 1),
    ], [(s.name, s.status, s.attempts) for s in hog.steps]
    # One delivery: the failure is terminal (term/ack), not a nak that comes back.
    assert hog_consumer.num_redelivered == 0, f"hog redelivered {hog_consumer.num_redelivered}x"
    assert steady_consumer.num_redelivered == 0, steady_consumer
    assert dead == 0, f"{dead} dead letters"
    print(
        f"R17: hog failed {hog.error.name}: {hog.error.message}; "
        f"{done}/{others} others complete in {took:.1f}s; redelivered 0"
    )
