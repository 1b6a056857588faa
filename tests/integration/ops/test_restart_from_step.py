"""Restart from a step: earlier results kept, later steps run again, the old run shut out."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from shared.errors import StepNotFoundError
from shared.workflow import Context, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


async def test_restart_from_a_step_keeps_earlier_results_and_runs_the_rest(nc, nats_url, prefix):
    """Restarting a complete instance from its second step runs the second and third
    again (with the first's recorded result) and never the first."""
    calls: Counter[str] = Counter()

    async def effect(name: str, value: Any) -> dict[str, Any]:
        calls[name] += 1
        return {"step": name, "input": value, "call": calls[name]}

    @workflow("three")
    async def three(ctx: Context[None], params: dict[str, Any]) -> list[Any]:
        a = await ctx.step("fetch", effect, "fetch", params["n"])
        b = await ctx.step("generate-resume", effect, "generate-resume", a["call"])
        c = await ctx.step("notify", effect, "notify", b["call"])
        return [a, b, c]

    registry = Registry([three])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("three", {"n": 7}, "i1")
        first = await wait_for(instances, "three", "i1")
        assert first.status == "complete"
        assert calls == {"fetch": 1, "generate-resume": 1, "notify": 1}

        restarted = await instances.restart("three", "i1", "generate-resume")
        assert restarted.generation == 1
        assert [s.name for s in restarted.steps] == ["fetch"]
        second = await wait_for(
            instances, "three", "i1", lambda s: s.generation == 1 and s.status == "complete"
        )
    assert calls == {"fetch": 1, "generate-resume": 2, "notify": 2}
    assert second.steps[0].result == first.steps[0].result
    assert second.output[1]["call"] == 2
    assert second.output[2] == {"step": "notify", "input": 2, "call": 2}

    with pytest.raises(StepNotFoundError, match="no step 'nope'"):
        await instances.restart("three", "i1", "nope")
    assert (await instances.get("three", "i1")).generation == 1


async def test_the_old_generations_late_writes_are_refused(nc, nats_url, prefix):
    """A run of the old generation that finishes its step after a restart from an earlier
    step records nothing: the new generation's results stand, and its later steps do not run
    twice."""
    calls: Counter[str] = Counter()
    gate = asyncio.Event()
    old_returned = asyncio.Event()

    async def prepare_step() -> str:
        calls["prepare"] += 1
        return "prepared"

    async def hold() -> str:
        calls["hold"] += 1
        if calls["hold"] == 1:  # the first (old generation's) attempt waits for the test
            await gate.wait()
            old_returned.set()
            return "old"
        return "new"

    async def check() -> str:
        calls["check"] += 1
        return f"checked {calls['check']}"

    async def finish(value: str) -> str:
        calls["finish"] += 1
        return f"finished {value}"

    @workflow("gated")
    async def gated(ctx: Context[None], params: dict[str, Any]) -> str:
        await ctx.step("prepare", prepare_step)
        await ctx.step("check", check)
        value = await ctx.step("hold", hold)
        return await ctx.step("finish", finish, value)

    registry = Registry([gated])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings) as worker:
        await instances.trigger("gated", {}, "g1")
        await wait_for(instances, "gated", "g1", lambda s: calls["hold"] == 1, timeout=60)
        # The old generation is inside "hold" (not recorded yet): restart from "check".
        await instances.restart("gated", "g1", "check")
        done = await wait_for(
            instances, "gated", "g1", lambda s: s.generation == 1 and s.status == "complete"
        )
        assert done.output == "finished new"
        gate.set()
        await asyncio.wait_for(old_returned.wait(), 30)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while worker._inflight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        assert not worker._inflight
    after = await instances.get("gated", "g1")
    assert after.generation == 1
    assert [(s.name, s.result) for s in after.steps] == [
        ("prepare", "prepared"),
        ("check", "checked 2"),
        ("hold", "new"),
        ("finish", "finished new"),
    ]
    assert after.output == "finished new"
    assert calls == {"prepare": 1, "check": 2, "hold": 2, "finish": 1}
