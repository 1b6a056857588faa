"""RELIABILITY R16: 20 runs parked after step 2 meet v2 of their workflow (step 3 renamed,
or a later step moved before it): 20/20 end with NonDeterminismError and no step runs
past the divergence."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from shared.workflow import Context, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_all, wait_for

RUNS = 20
WORKFLOW = "evolving"


def v1(calls: Counter[str]) -> Registry:
    async def work(name: str, run: str) -> str:
        calls[name] += 1
        return f"{name}:{run}"

    @workflow(WORKFLOW)
    async def evolving(ctx: Context[None], params: dict[str, Any]) -> str:
        await ctx.step("fetch", work, "fetch", ctx.instance_id)
        await ctx.step("analyze", work, "analyze", ctx.instance_id)
        # Step 3: parked here until the event; no worker holds the run meanwhile.
        await ctx.wait_for_event("approval", "approved", timedelta(hours=1))
        return await ctx.step("write", work, "write", ctx.instance_id)

    return Registry([evolving])


def v2(change: str, calls: Counter[str]) -> Registry:
    """The deployed change: every v2 step function counts its calls, so a step that ran
    on replay (recorded or past the divergence) shows."""

    async def work(name: str, run: str) -> str:
        calls[name] += 1
        return f"{name}:{run}"

    @workflow(WORKFLOW)
    async def evolving(ctx: Context[None], params: dict[str, Any]) -> str:
        await ctx.step("fetch", work, "fetch", ctx.instance_id)
        await ctx.step("analyze", work, "analyze", ctx.instance_id)
        if change == "renamed":
            await ctx.wait_for_event("sign-off", "approved", timedelta(hours=1))
            return await ctx.step("write", work, "write", ctx.instance_id)
        # reordered: the write now comes before the approval
        written = await ctx.step("write", work, "write", ctx.instance_id)
        await ctx.wait_for_event("approval", "approved", timedelta(hours=1))
        return written

    return Registry([evolving])


@pytest.mark.parametrize("change", ["renamed", "reordered"])
async def test_r16_parked_runs_meet_changed_code(nc, nats_url, prefix, change):
    ids = [f"nd{i}" for i in range(RUNS)]
    settings = engine_settings(prefix)
    v1_calls: Counter[str] = Counter()
    instances = await prepare(nc, v1(v1_calls), settings)
    async with running_worker(nats_url, v1(v1_calls), settings):
        for iid in ids:
            await instances.trigger(WORKFLOW, {}, iid)
        for iid in ids:
            parked = await wait_for(instances, WORKFLOW, iid, lambda s: s.status == "waiting")
            assert [(s.name, s.kind, s.status) for s in parked.steps] == [
                ("fetch", "do", "complete"),
                ("analyze", "do", "complete"),
                ("approval", "wait", "waiting"),
            ]
    assert v1_calls == Counter(fetch=RUNS, analyze=RUNS)

    # Deploy v2 (the v1 worker is gone) and resume every parked run with its event.
    v2_calls: Counter[str] = Counter()
    async with running_worker(nats_url, v2(change, v2_calls), settings):
        for iid in ids:
            await instances.send_event(WORKFLOW, iid, "approved", {"ok": True})
        states, elapsed = await wait_all(instances, WORKFLOW, ids, timeout=120)

    errors = Counter(s.error.name if s.error else None for s in states)
    assert errors == Counter(NonDeterminismError=RUNS), errors
    assert [s.status for s in states] == ["errored"] * RUNS
    expected = "'sign-off' in the code" if change == "renamed" else "'write' in the code"
    for state in states:
        assert state.error is not None
        assert f"step 3 of instance {state.instance_id!r} is {expected}" in state.error.message
        # The record stops where the divergence was found: nothing past step 3 recorded.
        assert [s.name for s in state.steps] == ["fetch", "analyze", "approval"]
    # Steps executed past the divergence (and recorded steps re-run): 0.
    assert sum(v2_calls.values()) == 0, v2_calls
    print(f"R16 {change}: {RUNS}/{RUNS} NonDeterminismError {elapsed:.1f}s after the events")
