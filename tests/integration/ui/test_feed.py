"""The change feed: every record write in order, resumable from a stream sequence."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator

from nats.aio.client import Client as NATS

from shared.workflow import Context, Instances, Registry, workflow
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
        # The bucket keeps one revision per key, so the feed must be subscribed before the
        # first write to see every write: with `idle`, its first item (None) says so.
        feed = changes(nc, instances.names, after=start, idle=0.2)
        assert await anext(feed) is None
        live = asyncio.create_task(_collect(feed, until=2))
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


@workflow("feed-user")
async def user_steps(ctx: Context[None], params: dict[str, str]) -> str:
    return await ctx.step("greet", _greet, params["name"])


async def _greet(name: str) -> str:
    return f"hello {name}"


SEALED = Registry([user_steps])
MASTER = "m1:" + base64.urlsafe_b64encode(b"k" * 32).decode().rstrip("=")


async def test_records_sealed_for_their_user_are_opened_by_the_stores_decoder(
    nc: NATS, nats_url: str, prefix: str
) -> None:
    # With DATA_MASTER_KEYS a user's record is stored sealed: the raw feed sees the
    # header only; the dashboard passes the store's decoder and sees params and steps.
    settings = engine_settings(prefix, data_master_keys=MASTER)
    prepared = await prepare(nc, SEALED, settings)
    instances = Instances(nc, prepared.names, prepared.routes, settings=settings)  # with the keys
    store = await instances.store()
    start = await last_sequence(nc, instances.names)
    params = {"userId": "7b0c1d2e-0000-4000-8000-000000000001", "name": "Ada Lovelace"}
    async with running_worker(nats_url, SEALED, settings):
        opened_feed = changes(nc, instances.names, after=start, idle=0.2, decode=store.decoded)
        raw_feed = changes(nc, instances.names, after=start, idle=0.2)
        assert await anext(opened_feed) is None and await anext(raw_feed) is None
        opened = asyncio.create_task(_collect(opened_feed, until=1))
        raw = asyncio.create_task(_collect(raw_feed, until=1))
        await instances.trigger("feed-user", params, "u1")
        seen, seen_raw = await opened, await raw

    last = [c.record for c in seen if c.record is not None][-1]
    assert last.status == "complete" and last.output == "hello Ada Lovelace"
    assert [s.name for s in last.steps] == ["greet"] and last.params == params
    header = [c.record for c in seen_raw if c.record is not None][-1]
    assert header.sealed is not None and header.steps == [] and header.output is None
