"""Progress declarations: which recorded steps count, the labels, the public outcome."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.workflow import Progress, progress
from shared.workflow.model import ErrorInfo, InstanceState, StepRecord
from shared.workflow.progress import public_summary, snapshot

PLAN = progress(
    {"plan": "Planning", "fetch-*": "Searching boards", "save": "Saving"},
    summary=("found", "ok", "name"),
    failed="Could not search.",
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _state(status: str, done: list[str], output: object = None) -> InstanceState:
    return InstanceState(
        workflow="w",
        instance_id="i",
        status=status,  # type: ignore[arg-type]
        created_at=NOW,
        steps=[StepRecord(seq=n, name=name, status="complete") for n, name in enumerate(done)],
        output=output,
        params={"userId": "u", "email": "a@b.c"},
        error=ErrorInfo(name="KeyError", message="internal detail")
        if status == "errored"
        else None,
    )


def test_steps_count_by_declared_position_with_wildcards_and_repeats() -> None:
    assert PLAN.position("plan") == 0
    assert PLAN.position("fetch-greenhouse") == 1
    assert PLAN.position("fetch-lever#2") == 1
    assert PLAN.position("save#3") == 2
    assert PLAN.position("unlisted") is None
    first = snapshot(PLAN, _state("running", []))
    assert (first.done, first.total, first.pct, first.label, first.step) == (
        0,
        3,
        0,
        "Planning",
        "plan",
    )
    mid = snapshot(PLAN, _state("running", ["plan", "unlisted", "fetch-a", "fetch-b"]))
    assert (mid.done, mid.pct, mid.label, mid.step) == (2, 67, "Saving", "save")
    assert mid.outcome is None and mid.summary is None


def test_outcomes_are_public_only() -> None:
    output = {"found": 4, "ok": True, "name": "Ada Lovelace", "secret": 1}
    done = snapshot(PLAN, _state("complete", ["plan"], output))
    assert (done.outcome, done.done, done.pct) == ("complete", 3, 100)
    assert done.summary == {"found": 4, "ok": True}  # strings never leave
    failed = snapshot(PLAN, _state("errored", ["plan"]))
    assert (failed.outcome, failed.message) == ("failed", "Could not search.")
    unsuccessful = snapshot(PLAN, _state("complete", ["plan"], {"success": False, "found": 1}))
    assert unsuccessful.outcome == "failed" and unsuccessful.summary is None
    stopped = snapshot(PLAN, _state("terminated", ["plan"]))
    assert stopped.outcome == "terminated"
    assert public_summary(PLAN, ["not", "a", "dict"]) == {}


def test_bad_declarations_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Progress(steps=())
    with pytest.raises(ValueError, match="twice"):
        Progress(steps=(("a", "A"), ("a", "B")))
    with pytest.raises(ValueError, match="label"):
        progress({"a": ""})
