"""Retention: finished instances and their index entries expire; running ones never do."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from shared.errors import InstanceNotFoundError, NonRetryableError
from shared.workflow import Context, Instances, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


async def gone(instances: Instances, workflow: str, instance_id: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            await instances.get(workflow, instance_id)
        except InstanceNotFoundError:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow}/{instance_id} still there after {timeout}s")


async def test_finished_instances_vanish_after_their_ttl_running_ones_stay(nc, nats_url, prefix):
    """With INSTANCE_RETENTION=2 s and ERRORED_RETENTION=6 s a complete instance is gone
    (record and list entries) first, then the errored one; a sleeping one stays."""

    async def outcome(ok: bool) -> str:
        if not ok:
            raise NonRetryableError("broken")
        return "done"

    @workflow("kept")
    async def kept(ctx: Context[None], params: dict[str, Any]) -> str:
        if params.get("sleep"):
            await ctx.sleep("long", timedelta(hours=1))
        return await ctx.step("outcome", outcome, params["ok"])

    registry = Registry([kept])
    settings = engine_settings(prefix, instance_retention=2.0, errored_retention=6.0)
    instances = await prepare(nc, registry, settings)
    instances = Instances(nc, instances.names, instances.routes, settings=settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("kept", {"ok": True, "userId": "u1"}, "fine")
        await instances.trigger("kept", {"ok": False, "userId": "u1"}, "bad")
        await instances.trigger("kept", {"ok": True, "sleep": True, "userId": "u1"}, "sleepy")
        assert (await wait_for(instances, "kept", "fine")).status == "complete"
        assert (await wait_for(instances, "kept", "bad")).status == "errored"
        await wait_for(instances, "kept", "sleepy", lambda s: s.status == "waiting")

        await gone(instances, "kept", "fine", timeout=30)
        assert (await instances.get("kept", "bad")).status == "errored"
        listed = [s.instance_id for s in (await instances.list("kept", user="u1")).items]
        assert sorted(listed) == ["bad", "sleepy"]

        await gone(instances, "kept", "bad", timeout=30)
        assert (await instances.get("kept", "sleepy")).status == "waiting"
        assert [s.instance_id for s in (await instances.list("kept")).items] == ["sleepy"]
        assert [s.instance_id for s in (await instances.list(user="u1")).items] == ["sleepy"]
    # What is left of the index is the sleeper's two entries (status group and user).
    # The record and its entries expire on their own TTLs (a second or so apart): allow
    # the entries a moment.
    js = nc.jetstream()
    for _ in range(150):
        if (await js.stream_info(f"{prefix}_index")).state.messages == 2:
            break
        await asyncio.sleep(0.2)
    assert (await js.stream_info(f"{prefix}_index")).state.messages == 2
    with pytest.raises(InstanceNotFoundError):
        await instances.get("kept", "fine")
