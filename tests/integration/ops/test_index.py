"""The list index: pages by workflow, status and user stay correct while instances change."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.errors import NonRetryableError
from shared.workflow import Context, Instances, InstanceState, Registry, workflow
from shared.workflow.model import encode, utcnow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


async def walk(instances: Instances, **filters: Any) -> list[Any]:
    """Every page of one listing, in order; each page is checked against the filters."""
    seen = []
    cursor = None
    while True:
        page = await instances.list(limit=7, cursor=cursor, **filters)
        ids = [(s.workflow, s.instance_id) for s in page.items]
        assert len(ids) == len(set(ids)), "an instance twice on one page"
        for state in page.items:
            if filters.get("workflow"):
                assert state.workflow == filters["workflow"]
            if filters.get("status"):
                assert state.status == filters["status"]
            if filters.get("user"):
                assert state.params["userId"] == filters["user"]
        seen.extend(page.items)
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_pages_by_workflow_status_and_user_under_concurrent_updates(nc, nats_url, prefix):
    """While 60 instances of two workflows for three users start, sleep and finish, every
    page matches its filter; once they settle, each listing holds exactly its instances."""

    async def work(n: int) -> int:
        if n % 5 == 0:
            raise NonRetryableError("fails on purpose")
        return n

    @workflow("alpha")
    async def alpha(ctx: Context[None], params: dict[str, Any]) -> int:
        await ctx.sleep("breathe", 0.2 * (params["n"] % 3))
        return await ctx.step("work", work, params["n"])

    @workflow("beta")
    async def beta(ctx: Context[None], params: dict[str, Any]) -> int:
        return await ctx.step("work", work, params["n"] + 1)

    registry = Registry([alpha, beta])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    users = ["user-a", "user.b", "user c"]  # dots and spaces are fine in a user id
    expected: dict[str, tuple[str, str]] = {}
    async with running_worker(nats_url, registry, settings):

        async def start_all() -> None:
            for n in range(60):
                wf = "alpha" if n % 2 == 0 else "beta"
                await instances.trigger(wf, {"n": n, "userId": users[n % 3]}, f"i{n:02d}")
                expected[f"i{n:02d}"] = (wf, users[n % 3])

        starting = asyncio.create_task(start_all())
        walks = 0
        while not starting.done() or walks < 3:
            for filters in (
                {"workflow": "alpha"},
                {"workflow": "beta", "status": "complete"},
                {"status": "errored"},
                {"user": "user.b"},
                {"user": "user-a", "workflow": "alpha", "status": "complete"},
            ):
                await walk(instances, **filters)
            walks += 1
        await starting
        for iid, (wf, _) in expected.items():
            await wait_for(instances, wf, iid)

    def ids(states: list[Any]) -> list[str]:
        return sorted(s.instance_id for s in states)

    def want(pred: Any) -> list[str]:
        return sorted(i for i, (wf, user) in expected.items() if pred(int(i[1:]), wf, user))

    def fails(n: int, wf: str) -> bool:
        return (n if wf == "alpha" else n + 1) % 5 == 0

    assert ids(await walk(instances, workflow="alpha")) == want(lambda n, wf, u: wf == "alpha")
    assert ids(await walk(instances)) == want(lambda n, wf, u: True)
    assert ids(await walk(instances, workflow="beta", status="complete")) == want(
        lambda n, wf, u: wf == "beta" and not fails(n, wf)
    )
    assert ids(await walk(instances, status="errored")) == want(lambda n, wf, u: fails(n, wf))
    assert ids(await walk(instances, status="running")) == []
    assert ids(await walk(instances, user="user.b")) == want(lambda n, wf, u: u == "user.b")
    assert ids(await walk(instances, user="user-a", workflow="alpha", status="complete")) == (
        want(lambda n, wf, u: u == "user-a" and wf == "alpha" and not fails(n, wf))
    )
    assert ids(await walk(instances, user="nobody")) == []
    # Entries of instances that moved on are deleted: one live entry per instance and
    # one per user entry, nothing else (deletes are fire-and-forget: allow them a moment).
    js = nc.jetstream()
    stream = f"{prefix}_index"
    for _ in range(100):
        if (await js.stream_info(stream)).state.messages == 120:
            break
        await asyncio.sleep(0.1)
    assert (await js.stream_info(stream)).state.messages == 120


async def test_reindex_files_records_written_before_the_index(nc, prefix):
    """A record written without index entries (an older deployment's) is not listed until
    `reindex` files it; a second reindex finds nothing to do."""

    @workflow("legacy")
    async def legacy(ctx: Context[None], params: dict[str, Any]) -> None:
        return None

    instances = await prepare(nc, Registry([legacy]), engine_settings(prefix))
    store = await instances.store()
    now = utcnow()
    old = InstanceState(
        workflow="legacy",
        instance_id="old1",
        status="complete",
        params={"userId": "u-old"},
        created_at=now,
        ended_at=now,
    )
    await store.kv.put("legacy.old1", encode(old))
    await instances.trigger("legacy", {"userId": "u-new"}, "new1")
    assert [s.instance_id for s in (await instances.list("legacy")).items] == ["new1"]
    assert await instances.reindex() == 1
    assert await instances.reindex() == 0
    listed = (await instances.list("legacy")).items
    assert sorted(s.instance_id for s in listed) == ["new1", "old1"]
    assert [s.instance_id for s in (await instances.list(user="u-old")).items] == ["old1"]
    complete = await instances.list("legacy", status="complete")
    assert [s.instance_id for s in complete.items] == ["old1"]
