"""Quality gates and usage metering for steps: `ctx.step(..., validate=Validate(check))`.

A step with a gate has each attempt's value checked by `check(value) -> problems`. No
problems: the value is the step's result. Problems: the attempt's output and problems are
kept in the step record (`outputs`), and the step runs again with them stated
(`step_feedback()` tells the step function what was wrong and whether this is the fallback
round); after `retries` such rounds, one more round with `fallback` set (the step function
switches to its second model), and if that fails too the attempt with the fewest problems
becomes the result, the step marked `needs_review`. A gate failure never fails the step.

Usage: a step function (or the adapter it calls) reports what each external call cost with
`record_usage(model, counts)`; the engine sums it per attempt and per step into the step
record's `usage`, failed attempts included (their tokens were spent too).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.metrics import metrics

__all__ = [
    "Feedback",
    "GateFailed",
    "StepMeter",
    "Validate",
    "add_gate_listener",
    "add_usage",
    "record_usage",
    "step_feedback",
]

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Validate(Generic[T]):
    """A step's quality gate: `check` returns the problems of a value (empty: it passes).

    `retries` rounds with the problems stated, then (with `fallback`) one round on the
    step's second model; then the best attempt is kept, marked `needs_review`.
    """

    check: Callable[[T], Sequence[str]]
    retries: int = 1
    fallback: bool = True

    def __post_init__(self) -> None:
        if not callable(self.check):
            raise ValueError("Validate.check must be callable")
        if not isinstance(self.retries, int) or not 0 <= self.retries <= 5:
            raise ValueError("Validate.retries must be an int from 0 to 5")

    @property
    def rounds(self) -> int:
        """How many attempts the gate allows in all."""
        return 1 + self.retries + (1 if self.fallback else 0)

    def is_fallback(self, round_no: int) -> bool:
        return self.fallback and round_no == self.rounds - 1


@dataclass(frozen=True)
class Feedback:
    """What the previous attempts of this step got wrong (for the next one's prompt)."""

    round: int  # 1 for the first retry
    problems: tuple[str, ...]
    fallback: bool  # this round should use the step's second (fallback) model

    def text(self) -> str:
        return "; ".join(self.problems)


class GateFailed(Exception):
    """An attempt returned a value its gate rejected (internal to the engine)."""

    def __init__(self, value: Any, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.value = value
        self.problems = problems


class StepMeter:
    """The usage reported during one attempt of one step."""

    def __init__(self) -> None:
        self.counts: dict[str, float] = {}
        self.models: list[str] = []
        self.calls = 0

    def add(self, model: str, counts: Mapping[str, float]) -> None:
        self.calls += 1
        if model and model not in self.models:
            self.models.append(model)
        for name, value in counts.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.counts[name] = self.counts.get(name, 0) + value

    def snapshot(self) -> dict[str, Any] | None:
        if not self.calls:
            return None
        return {**_rounded(self.counts), "calls": self.calls, "models": list(self.models)}


def add_usage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Two usage snapshots summed (numbers added, model lists merged)."""
    if not a:
        return dict(b) if b else None
    if not b:
        return dict(a)
    total: dict[str, Any] = {}
    for key in {*a, *b}:
        x, y = a.get(key), b.get(key)
        if key == "models":
            total[key] = list(dict.fromkeys([*(x or []), *(y or [])]))
        elif isinstance(x, int | float) or isinstance(y, int | float):
            total[key] = (x or 0) + (y or 0)
    return _rounded(total)


def _rounded(counts: Mapping[str, Any]) -> dict[str, Any]:
    # Costs are fractions of a dollar: keep them readable and free of float noise.
    return {k: round(v, 8) if isinstance(v, float) else v for k, v in counts.items()}


# (workflow, step, outcome) for every gate verdict: "passed", "rejected" (a round
# failed) or "needs_review" (the best attempt kept). The hook for metrics.
GateListener = Callable[[str, str, str], None]
_gate_listeners: list[GateListener] = []


def add_gate_listener(listener: GateListener) -> None:
    """Hear every gate verdict (metrics): `listener(workflow, step, outcome)`."""
    _gate_listeners.append(listener)


def notify_gate(workflow: str, step: str, outcome: str) -> None:
    for listener in _gate_listeners:
        try:
            listener(workflow, step, outcome)
        except Exception as exc:  # noqa: BLE001 - metrics never fail a step
            log.warning("gate listener failed: %s", exc)


_FEEDBACK: contextvars.ContextVar[Feedback | None] = contextvars.ContextVar(
    "step_feedback", default=None
)
_METER: contextvars.ContextVar[StepMeter | None] = contextvars.ContextVar(
    "step_meter", default=None
)


def step_feedback() -> Feedback | None:
    """Inside a gated step's function: what the previous attempts got wrong (None first)."""
    return _FEEDBACK.get()


def record_usage(model: str, counts: Mapping[str, float]) -> None:
    """Report one external call's usage (tokens, cost) to the step running it, if any."""
    meter = _METER.get()
    if meter is not None:
        meter.add(model, counts)


def enter(feedback: Feedback | None) -> tuple[StepMeter, Callable[[], None]]:
    """Set up one attempt's feedback and meter; the returned function undoes it."""
    meter = StepMeter()
    tokens = (_FEEDBACK.set(feedback), _METER.set(meter))

    def leave() -> None:
        _METER.reset(tokens[1])
        _FEEDBACK.reset(tokens[0])

    return meter, leave


def _export_verdict(workflow: str, step: str, outcome: str) -> None:
    metrics().gate_verdict(workflow, step, outcome)


add_gate_listener(_export_verdict)  # /metrics: verdicts by workflow and outcome
