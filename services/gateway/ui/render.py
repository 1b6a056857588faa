"""The dashboard's Jinja2 environment (autoescaping on), its filters, and the waterfall.

Every value from a run (params, outputs, errors, event payloads) reaches a page through
Jinja's autoescaping: a step output holding `<script>` is shown as text. No template
marks run data `|safe`, and no filter returns Markup built from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import msgspec
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from shared.workflow.model import InstanceState, StepRecord

TEMPLATES = Path(__file__).parent / "templates"
# A value whose pretty JSON is longer than this (characters or lines) is folded.
FOLD_CHARS = 240
FOLD_LINES = 8
PREVIEW = 80
WIDTH = 1000  # the waterfall's SVG user units


def pretty(value: Any) -> str:
    """JSON indented for reading; non-JSON values (datetimes) as their strings."""
    try:
        return json.dumps(msgspec.to_builtins(value), indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return repr(value)


def folded(text: str) -> bool:
    return len(text) > FOLD_CHARS or text.count("\n") >= FOLD_LINES


def preview(value: Any) -> str:
    """One short line of a value, for a folded value's summary."""
    if isinstance(value, str):
        line = value
    else:
        line = json.dumps(msgspec.to_builtins(value), ensure_ascii=False, default=str)
    line = " ".join(line.split())
    return line if len(line) <= PREVIEW else line[: PREVIEW - 1] + "…"


def when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


@dataclass(frozen=True)
class Bar:
    """One segment of a step's waterfall row, in SVG units (0..WIDTH)."""

    x: float
    width: float
    kind: str  # queue, run, errored, retry, sleep, wait
    title: str


@dataclass(frozen=True)
class StepRow:
    step: StepRecord
    bars: list[Bar]
    queued: float | None  # seconds from the previous step's end to this one's start
    ran: float | None  # seconds from first attempt start to last attempt end
    retries: int


def waterfall(state: InstanceState, now: datetime | None = None) -> tuple[list[StepRow], float]:
    """Each step's bars on one time axis from the instance's creation: queue (waiting for a
    worker or a retry), run (first attempt to last), sleep or wait; and the axis span."""
    now = now or datetime.now(UTC)
    origin = state.created_at
    finished = state.status in ("complete", "errored", "terminated")
    marks = [state.ended_at or state.updated_at or now]
    for step in state.steps:
        if step.ended_at is not None:
            marks.append(step.ended_at)  # a finished wait's deadline is not on the axis
        if finished:
            continue
        # What is still ahead: the next retry, a sleep's end (up to now + 1 h); a wait's
        # deadline is not (its bar shows the wait so far).
        ahead = step.retry_at if step.status == "retrying" else None
        if step.kind == "sleep" and step.ended_at is None:
            ahead = step.wake_at
        if ahead is not None:
            marks.append(min(ahead, now + timedelta(hours=1)))
    finish = max(marks) if finished else max([now, *marks])
    span = max((finish - origin).total_seconds(), 0.001)

    def x(moment: datetime) -> float:
        return round(min(max((moment - origin).total_seconds() / span, 0.0), 1.0) * WIDTH, 2)

    def bar(start: datetime, end: datetime, kind: str, title: str) -> Bar:
        left, right = x(start), x(end)
        return Bar(left, max(right - left, 1.5), kind, title)

    rows: list[StepRow] = []
    previous = state.started_at or origin
    if state.steps and state.started_at is None:
        previous = origin
    first = True
    for step in state.steps:
        bars: list[Bar] = []
        start = step.started_at
        queued = None
        if start is not None:
            gap_from = origin if first else previous
            queued = between(gap_from, start)
            if queued:
                label = "queued before the run started" if first else "queued / replaying"
                bars.append(bar(gap_from, start, "queue", f"{label}: {duration(queued)}"))
        ran = between(start, step.ended_at)
        if step.kind in ("sleep", "wait") and start is not None:
            end = step.ended_at or (step.wake_at if step.kind == "sleep" else None) or now
            what = "sleep" if step.kind == "sleep" else f"wait for {step.event or 'an event'}"
            bars.append(bar(start, end, step.kind, f"{what}: {duration(between(start, end))}"))
        elif start is not None:
            end = step.ended_at or now
            kind = "errored" if step.status == "errored" else "run"
            bars.append(bar(start, end, kind, f"ran {duration(between(start, end))}"))
            if step.status == "retrying" and step.retry_at is not None:
                bars.append(
                    bar(end, step.retry_at, "retry", f"next attempt at {when(step.retry_at)}")
                )
        rows.append(StepRow(step, bars, queued, ran, max(0, step.attempts - 1)))
        if step.ended_at is not None:
            previous = step.ended_at
        first = False
    return rows, span


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,  # every template, whatever its name: run values are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pretty=pretty, folded=folded, preview=preview, when=when, duration=duration)
    env.globals.update(between=between)
    return env


ENV = _environment()


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(ENV))


def render(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)
