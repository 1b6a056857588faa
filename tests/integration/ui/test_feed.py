"""The change feed: every record write in order, resumable from a stream sequence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from nats.aio.client import Client as NATS

from shared.workflow import Context, Registry, workflow
from shared.workflow.feed import Change, changes, last_sequence
from tests.support.engine import engine_settings, prepare, running_worker


@workflow("feed-two")
async def two_steps(ctx: Context[None], params: dict[str, int]) -> int:
    first = await ctx.step("one", _add, params["n"], 1)
    return await ctx.step("two", _add, first, 10)


async def _add(a: int, b: int) -> int:
    return a + b


REGISTRY = Registry([two_steps])


async def _collect(
    feed: AsyncIterator[Change | None], until: int, timeout: float = 60
) -> list[Change]:
    got: list[Change] = []

    async def read() -> None:
        async for change in feed:
            if change is None:
                continue
            got.append(change)
            done = sum(1 for c in got if c.record is not None and c.record.status == "complete")
            if done >= until:
                return

    await asyncio.wait_for(read(), timeout)
    return got


async def test_feed_yields_each_write_in_order_and_resumes_after_a_sequence(
    nc: NATS, nats_url: str, prefix: str
) -> None:
    settings = engine_settings(prefix)
    instances = await prepare(nc, REGISTRY, settings)
    await instances.store()  # the bucket exists before the feed's first sequence is read
    start = await last_sequence(nc, instances.names)
    async with running_worker(nats_url, REGISTRY, settings):
        live = asyncio.create_task(_collect(changes(nc, instances.names, after=start), until=2))
        await asyncio.sleep(0.2)
        await instances.trigger("feed-two", {"n": 1}, "a")
        await instances.trigger("feed-two", {"n": 5}, "b")
        seen = await live

    assert {c.key for c in seen} == {"feed-two.a", "feed-two.b"}
    seqs = [c.seq for c in seen]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and seqs[0] > start
    for iid, output in (("a", 12), ("b", 16)):
        mine = [c.record for c in seen if c.instance_id == iid and c.record is not None]
        # Read live, the feed is the record's whole history: queued, running, each step
        # recorded, complete with the output.
        assert mine[0].status == "queued"
        assert mine[-1].status == "complete" and mine[-1].output == output
        assert [len(r.steps) for r in mine] == sorted(len(r.steps) for r in mine)
        assert [s.name for s in mine[-1].steps] == ["one", "two"]
        assert len(mine) >= 4

    # The bucket keeps one revision per key: resumed from a sequence, the feed yields the
    # latest write of each key written after it, and nothing older.
    resumed: list[Change] = []

    async def read_rest(after: int, **only: str) -> None:
        async for change in changes(nc, instances.names, after=after, idle=0.5, **only):
            if change is None:
                return  # caught up: nothing more was written
            resumed.append(change)

    await asyncio.wait_for(read_rest(start), 30)
    assert [(c.key, c.seq) for c in resumed] == sorted(
        ((c.key, c.seq) for c in seen if c.seq == max(x.seq for x in seen if x.key == c.key)),
        key=lambda pair: pair[1],
    )
    assert all(c.record is not None and c.record.status == "complete" for c in resumed)
    last_a = max(c.seq for c in seen if c.key == "feed-two.a")
    resumed.clear()
    # After a's last write, filtered to a: nothing; filtered to b from before b's: b.
    await asyncio.wait_for(read_rest(last_a, workflow="feed-two", instance_id="a"), 30)
    assert resumed == []
    await asyncio.wait_for(read_rest(start, workflow="feed-two", instance_id="b"), 30)
    assert [c.key for c in resumed] == ["feed-two.b"]


async def test_a_feed_from_now_sees_only_later_writes(nc: NATS, nats_url: str, prefix: str) -> None:
    settings = engine_settings(prefix)
    instances = await prepare(nc, REGISTRY, settings)
    await instances.trigger("feed-two", {"n": 1}, "old")
    feed = changes(nc, instances.names, idle=0.3)
    first = await asyncio.wait_for(feed.__anext__(), 30)
    assert first is None  # the earlier write is not replayed
    await instances.trigger("feed-two", {"n": 2}, "new")
    while True:
        change = await asyncio.wait_for(feed.__anext__(), 30)
        if change is not None:
            break
    assert change.key == "feed-two.new" and change.record is not None
    assert change.record.status == "queued"
    await feed.aclose()
