"""Replay a recorded instance against the current code, answering every step from the record.

A code change that would stop parked instances (`NonDeterminismError` on their next
delivery) shows up here first, in CI: `replay(workflow, record)` runs the workflow
function on the engine's own replay machinery (`Run`, `Context`, a `MemoryStore` holding
a copy of the record) and reports where the steps the code asks for part from the ones
recorded. No step function is ever called: a step the record does not have ends the
replay as a mismatch before its function could run, and no write reaches a real store.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec

from shared.errors import NonDeterminismError
from shared.workflow.context import Context, Halt, Run, Suspend
from shared.workflow.definition import Workflow
from shared.workflow.model import InstanceState, StepRecord
from shared.workflow.records import MemoryStore

__all__ = ["Mismatch", "replay"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """Where the code and the record part: position `seq` (1-based) is `found` in the code
    and `recorded` in the record, each `name (kind)`; None where that side has no step.
    Past the last step, the two ends are compared too ("a return", "a raise of X")."""

    seq: int
    recorded: str | None
    found: str | None

    def __str__(self) -> str:
        if self.found is None:
            return f"step {self.seq}: the record has {self.recorded}, the code no longer reaches it"
        if self.recorded is None:
            return f"step {self.seq}: the code asks for {self.found}, the record has no such step"
        return f"step {self.seq}: the code asks for {self.found}, the record has {self.recorded}"


def _label(name: str, kind: str) -> str:
    return f"{name!r} ({kind})"


class _Stop(BaseException):
    """Ends the replay at a mismatch or at the end of the record (not an Exception, so a
    workflow's own `except Exception` cannot swallow it)."""

    def __init__(self, mismatch: Mismatch | None) -> None:
        self.mismatch = mismatch


class _ReplayRun(Run):
    """A `Run` whose cursor is checked against the record by name and kind; a position
    past the record stops the replay instead of running the step."""

    asking = "do"  # the kind of the step the code is asking for (set by _ReplayContext)

    def next_position(self, name: str) -> tuple[int, str]:
        kind = self.asking
        try:
            seq, key = super().next_position(name)
        except NonDeterminismError:
            seq = self.cursor - 1
            recorded = self.state.step_at(seq)
            assert recorded is not None
            found = name if self.names[name] == 1 else f"{name}#{self.names[name]}"
            raise _Stop(
                Mismatch(seq + 1, _label(recorded.name, recorded.kind), _label(found, kind))
            ) from None
        recorded = self.state.step_at(seq)
        if recorded is None:
            raise _Stop(Mismatch(seq + 1, None, _label(key, kind)))
        if recorded.kind != kind:
            raise _Stop(Mismatch(seq + 1, _label(recorded.name, recorded.kind), _label(key, kind)))
        if recorded.status not in ("complete", "errored"):
            # The record ends here (a parked sleep, wait or retry): nothing more to compare.
            raise _Stop(None)
        return seq, key


class _ReplayContext(Context[Any]):
    """A `Context` that tells its run which kind of step each call asks for."""

    _run: _ReplayRun

    async def step(self, name: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self._run.asking = "do"
        return await super().step(name, *args, **kwargs)

    async def sleep(self, name: str, duration: timedelta | float) -> None:
        self._run.asking = "sleep"
        await super().sleep(name, duration)

    async def sleep_until(self, name: str, when: datetime) -> None:
        self._run.asking = "sleep"
        await super().sleep_until(name, when)

    async def wait_for_event(
        self, name: str, event: str, timeout: timedelta | float, payload_type: Any = None
    ) -> Any:
        self._run.asking = "wait"
        return await super().wait_for_event(name, event, timeout, payload_type)


async def replay(wf: Workflow, record: InstanceState, deps: Any = None) -> list[Mismatch]:
    """Replay `record` against `wf`'s current code; the mismatches, in step order (empty:
    the code would replay this history). `deps` is what the workflow reads between steps
    (board lists, model names); step functions are never called, so it may be offline."""
    state = copy.deepcopy(record)
    # A finished record would make every control check halt the replay: run it as live.
    state.status = "running"
    store = MemoryStore()
    revision = await store.create(state)
    assert revision is not None
    run = _ReplayRun(store, wf, state, revision)
    ctx = _ReplayContext(run, deps)
    recorded: list[StepRecord] = sorted(record.steps, key=lambda s: s.seq)
    params = state.params
    if wf.params_type is not None:
        params = msgspec.convert(params, wf.params_type)
    raised: str | None = None
    try:
        await wf.run(ctx, params)
    except _Stop as stop:
        if stop.mismatch is not None:
            return [stop.mismatch]
        return []
    except (Suspend, Halt):
        return []
    except Exception as exc:  # noqa: BLE001 - the workflow's own failure: compare it too
        raised = type(exc).__name__
    # The code finished: every recorded step it did not reach is a mismatch.
    missed = [
        Mismatch(step.seq + 1, _label(step.name, step.kind), None)
        for step in recorded
        if step.seq >= run.cursor
    ]
    if missed:
        return missed
    # Same steps, different end: the record finished one way, the code another.
    ended = f"a raise of {raised}" if raised else "a return"
    if record.status == "complete" and raised:
        return [Mismatch(run.cursor + 1, "a return (the run completed)", ended)]
    if record.status == "errored" and record.error is not None and raised != record.error.name:
        return [Mismatch(run.cursor + 1, f"a raise of {record.error.name}", ended)]
    return []
