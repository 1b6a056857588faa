"""How instances, steps, dead letters and bulk jobs look as text: rich tables, short times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.json import JSON
from rich.table import Table
from rich.text import Text

from shared.client import DeadLetter, InstanceDetail, InstanceSummary, StepDetail

STATUS_STYLE = {
    "complete": "green",
    "errored": "bold red",
    "terminated": "magenta",
    "running": "yellow",
    "retrying": "yellow",
    "queued": "dim",
    "paused": "cyan",
    "waiting": "cyan",
    "sleeping": "cyan",
}


def table(*columns: str, title: str | None = None) -> Table:
    """A table without borders whose first column starts at the left edge (so `grep`,
    `awk` and eyes all find the columns)."""
    grid = Table(
        *columns,
        box=box.SIMPLE_HEAD if title else None,
        pad_edge=False,
        show_edge=False,
        header_style="bold",
        title=title,
        title_justify="left",
        title_style="bold",
    )
    return grid


def status(value: str) -> Text:
    return Text(value, style=STATUS_STYLE.get(value, ""))


def when(value: datetime | None) -> str:
    """UTC, to the second: `2026-12-01 09:00:05Z`; `-` for none."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def clock(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%H:%M:%SZ")


def duration(ms: float | None) -> str:
    """`850ms`, `2.3s`, `4m05s`, `1h02m`; `-` for none."""
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{int(ms)}ms"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def span(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return "-"
    return duration((end - start).total_seconds() * 1000)


def instances(rows: Sequence[InstanceSummary]) -> Table:
    grid = table("instance", "workflow", "status", "gen", "created", "took", "error")
    for row in rows:
        grid.add_row(
            row.instance_id,
            row.workflow,
            status(row.status),
            str(row.generation),
            when(row.created_at),
            span(row.started_at or row.created_at, row.ended_at),
            _error_text(row.error.name, row.error.message) if row.error else "",
        )
    return grid


def retries(step: StepDetail) -> int:
    """Attempts beyond the first (a cached step made none)."""
    return max(step.attempts - 1, 0)


def waits(step: StepDetail) -> str:
    """What the step waits for now, or waited for: the next try, a wake-up, an event."""
    if step.status == "retrying" and step.retry_at is not None:
        return f"next try {clock(step.retry_at)}"
    if step.kind == "sleep":
        return f"sleep until {clock(step.wake_at)}" if step.wake_at else "sleep"
    if step.kind == "wait":
        until = f" until {clock(step.wake_at)}" if step.wake_at else ""
        return f"event {step.event or '?'}{until}"
    return ""


def steps(rows: Sequence[StepDetail]) -> Table:
    grid = table(
        "#", "step", "kind", "status", "attempts", "retries", "took", "started", "waits", "cached"
    )
    for step in rows:
        grid.add_row(
            str(step.seq),
            step.name,
            step.kind,
            status(step.status),
            str(step.attempts),
            str(retries(step)),
            duration(step.duration_ms),
            when(step.started_at),
            waits(step),
            "cached" if step.cached else "",
        )
    return grid


def step_line(step: StepDetail, generation: int) -> Text:
    """One line of `watch` per step change."""
    line = Text()
    line.append(f"#{step.seq} ", style="dim")
    line.append(step.name, style="bold")
    line.append(" ")
    line.append_text(status(step.status))
    extra = [f"attempt {step.attempts}"] if step.attempts > 1 else []
    if step.duration_ms is not None:
        extra.append(duration(step.duration_ms))
    if step.cached:
        extra.append("cached")
    if wait := waits(step):
        extra.append(wait)
    if step.error is not None and step.status in ("errored", "retrying"):
        extra.append(_error_text(step.error.name, step.error.message))
    if generation:
        extra.append(f"generation {generation}")
    if extra:
        line.append("  " + " · ".join(extra), style="dim" if step.status == "complete" else "")
    return line


def detail(value: InstanceDetail) -> RenderableType:
    """`show`: the header, params, output or error, the steps and the event inbox."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("instance", value.instance_id)
    head.add_row("workflow", value.workflow)
    head.add_row("status", status(value.status))
    head.add_row("generation", str(value.generation))
    head.add_row("created", when(value.created_at))
    head.add_row("started", when(value.started_at))
    head.add_row("ended", when(value.ended_at))
    head.add_row("took", span(value.started_at, value.ended_at))
    if value.trigger is not None and value.trigger.event:
        head.add_row("trigger", f"event {value.trigger.event} ({value.trigger.event_id or '-'})")
    parts: list[RenderableType] = [head, Text("\nparams", style="bold"), as_json(value.params)]
    if value.output is not None:
        parts += [Text("\noutput", style="bold"), as_json(value.output)]
    if value.error is not None:
        parts += [
            Text("\nerror", style="bold"),
            Text(_error_text(value.error.name, value.error.message), style="red"),
        ]
    parts += [Text(f"\nsteps ({len(value.steps)})", style="bold")]
    parts += [steps(value.steps) if value.steps else Text("none recorded yet", style="dim")]
    if value.events:
        inbox = table("event", "type", "received", "consumed by")
        for item in value.events:
            inbox.add_row(item.id, item.type, when(item.received_at), item.consumed_by or "-")
        parts += [Text(f"\nevents ({len(value.events)})", style="bold"), inbox]
    return Group(*parts)


def dead_letters(rows: Sequence[DeadLetter]) -> Table:
    grid = table("seq", "workflow", "reason", "instance", "recorded", "deliveries", "error")
    for row in rows:
        grid.add_row(
            str(row.seq),
            row.workflow,
            row.reason,
            row.instance_id or "-",
            when(row.recorded_at),
            "-" if row.deliveries is None else str(row.deliveries),
            _error_text(row.error.name, row.error.message) if row.error else "",
        )
    return grid


def dead_letter(row: DeadLetter) -> RenderableType:
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for name, text in (
        ("seq", str(row.seq)),
        ("workflow", row.workflow),
        ("reason", row.reason),
        ("subject", row.subject),
        ("instance", row.instance_id or "-"),
        ("recorded", when(row.recorded_at)),
        ("stream seq", "-" if row.stream_seq is None else str(row.stream_seq)),
        ("deliveries", "-" if row.deliveries is None else str(row.deliveries)),
        ("error", _error_text(row.error.name, row.error.message) if row.error else "-"),
    ):
        head.add_row(name, text)
    preview = Text(row.payload_preview or "(empty)")
    return Group(head, Text("\npayload", style="bold"), preview)


def as_json(value: Any) -> RenderableType:
    if value is None:
        return Text("null", style="dim")
    return JSON.from_data(value, indent=2, default=str)


def print_json(console: Console, value: Any) -> None:
    console.print(as_json(value))


def _error_text(name: str, message: str) -> str:
    return f"{name}: {message}" if message else name
