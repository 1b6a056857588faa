"""RELIABILITY R16 in CI: the golden step-logs of every catalog workflow (real runs on the
offline stack, tests/data/golden) replay against the current code with 0 mismatches, and a
workflow with a step renamed, reordered or dropped reports where."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from shared.catalog import CATALOG
from shared.workflow import Context, workflow
from shared.workflow.model import ErrorInfo, InstanceState, StepRecord, utcnow
from shared.workflow.replay import Mismatch, replay
from tests.support.golden import load, production_workflows, replay_deps

WORKFLOWS = production_workflows()


def test_every_catalog_workflow_has_a_golden_log():
    assert sorted(WORKFLOWS) == sorted(spec.id for spec in CATALOG)
    for spec in CATALOG:
        record = load(spec.id)
        assert record.status == "complete", spec.id
        assert record.steps, spec.id
        assert record.sealed is None, spec.id  # recorded opened: replayable without keys


@pytest.mark.parametrize("workflow_id", sorted(spec.id for spec in CATALOG))
async def test_golden_log_replays_with_no_mismatch(workflow_id: str):
    record = load(workflow_id)
    assert await replay(WORKFLOWS[workflow_id], record, replay_deps(workflow_id)) == []


def _never(*args: Any) -> Any:
    raise AssertionError("a replay called a step function")


async def test_golden_log_against_a_renamed_step_reports_it():
    """The demo workflow of today with its second step renamed (a deliberately changed
    copy): the golden log shows the mismatch where a parked instance would stop."""
    record = load("demo-greeting")

    @workflow("demo-greeting")
    async def changed(ctx: Context[None], params: dict[str, Any]) -> str:
        text = await ctx.step("compose", _never, params["name"])
        await ctx.sleep("wait-a-bit", timedelta(seconds=1))  # was "pause"
        return await ctx.step("sign", _never, text)

    mismatches = await replay(changed, record)
    assert mismatches == [Mismatch(2, "'pause' (sleep)", "'wait-a-bit' (sleep)")]
    assert "the code asks for 'wait-a-bit' (sleep), the record has 'pause'" in str(mismatches[0])


class _Renaming:
    """The production workflow's own code with one step name changed: a deliberately
    changed copy, as a careless rename in services/*/workflows.py would make it."""

    def __init__(self, ctx: Context[Any], old: str, new: str) -> None:
        self._ctx, self._old, self._new = ctx, old, new

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def step(self, name: str, *args: Any, **options: Any) -> Any:
        return await self._ctx.step(self._new if name == self._old else name, *args, **options)


@pytest.mark.parametrize(
    ("workflow_id", "old", "new", "seq"),
    [
        ("resume-generation", "calculate-scores", "score-resume", 6),
        ("job-discovery", "fetch-remotive", "download-remotive", 7),
        ("resume-parsing", "save-parsed-data", "store-parsed-data", 3),
    ],
)
async def test_production_workflow_with_a_renamed_step_reports_it(workflow_id, old, new, seq):
    real = WORKFLOWS[workflow_id]

    async def run(ctx: Context[Any], params: Any) -> Any:
        return await real.run(_Renaming(ctx, old, new), params)  # type: ignore[arg-type]

    changed = dataclasses.replace(real, run=run)
    record = load(workflow_id)
    mismatches = await replay(changed, record, replay_deps(workflow_id))
    assert mismatches == [Mismatch(seq, f"{old!r} (do)", f"{new!r} (do)")]


def _record(*steps: tuple[str, str]) -> InstanceState:
    now = utcnow()
    return InstanceState(
        workflow="w",
        instance_id="i",
        status="complete",
        created_at=now,
        steps=[
            StepRecord(seq=i, name=name, kind=kind, status="complete", result=name, ended_at=now)
            for i, (name, kind) in enumerate(steps)
        ],
    )


def _flow(*steps: tuple[str, str]) -> Any:
    @workflow("w")
    async def flow(ctx: Context[None], params: Any) -> None:
        for name, kind in steps:
            if kind == "do":
                await ctx.step(name, _never)
            elif kind == "sleep":
                await ctx.sleep(name, 1)
            else:
                await ctx.wait_for_event(name, "go", 60)

    return flow


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param([("a", "do"), ("b", "do"), ("c", "do")], [], id="unchanged"),
        pytest.param(
            [("a", "do"), ("c", "do"), ("b", "do")],
            [Mismatch(2, "'b' (do)", "'c' (do)")],
            id="reordered",
        ),
        pytest.param(
            [("a", "do"), ("b", "sleep"), ("c", "do")],
            [Mismatch(2, "'b' (do)", "'b' (sleep)")],
            id="kind-changed",
        ),
        pytest.param(
            [("a", "do"), ("b", "do")],
            [Mismatch(3, "'c' (do)", None)],
            id="step-dropped",
        ),
        pytest.param(
            [("a", "do"), ("b", "do"), ("c", "do"), ("d", "wait")],
            [Mismatch(4, None, "'d' (wait)")],
            id="step-added",
        ),
        pytest.param(
            [("a", "do"), ("a", "do"), ("c", "do")],
            [Mismatch(2, "'b' (do)", "'a#2' (do)")],
            id="repeat-of-a-name",
        ),
    ],
)
async def test_replay_reports_each_kind_of_divergence(code, expected):
    record = _record(("a", "do"), ("b", "do"), ("c", "do"))
    assert await replay(_flow(*code), record) == expected


async def test_same_steps_but_a_different_end_is_reported():
    record = _record(("a", "do"))

    @workflow("w")
    async def raises(ctx: Context[None], params: Any) -> None:
        await ctx.step("a", _never)
        raise ValueError("changed: now refuses")

    assert await replay(raises, record) == [
        Mismatch(2, "a return (the run completed)", "a raise of ValueError")
    ]
    errored = _record(("a", "do"))
    errored.status = "errored"
    errored.error = ErrorInfo(name="ValueError", message="refused")
    assert await replay(raises, errored) == []
    assert await replay(_flow(("a", "do")), errored) == [
        Mismatch(2, "a raise of ValueError", "a return")
    ]
