"""Instance commands: send, trigger, status, list, show, watch, pause/resume/terminate,
restart and event send — each one or a few calls of shared.client."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from shared.cli import render
from shared.cli.session import (
    EXIT_FAILED,
    EXIT_TERMINATED,
    EXIT_TIMEOUT,
    CliError,
    Format,
    Session,
    Target,
    parse_json,
    parse_when,
)
from shared.client import (
    Event,
    InstanceDetail,
    InstancePage,
    InstanceSummary,
    StepDetail,
    WorkflowsClient,
)
from shared.wire import STATUSES, Status

TERMINAL = {"complete": 0, "errored": EXIT_FAILED, "terminated": EXIT_TERMINATED}

OutputOpt = Annotated[
    Format | None, typer.Option("--output", "-o", help="text (default), json or jsonl")
]
Workflow = Annotated[str, typer.Argument(help="the workflow id, e.g. resume-generation")]
InstanceId = Annotated[str, typer.Argument(help="the instance id")]
Interval = Annotated[
    float, typer.Option("--interval", min=0.05, help="seconds between polls of the gateway")
]
Timeout = Annotated[
    float | None,
    typer.Option(
        "--timeout", min=0.0, help=f"give up after this many seconds (exit {EXIT_TIMEOUT})"
    ),
]


def session(ctx: typer.Context) -> Session:
    obj = ctx.find_root().obj
    assert isinstance(obj, Session), "the root callback sets the session"
    return obj


def _status(value: str | None) -> Status | None:
    if value is None:
        return None
    if value not in STATUSES:
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(STATUSES)}", param_hint="--status"
        )
    return value  # type: ignore[return-value]  # checked against the Literal's values


# -- starting ---------------------------------------------------------------------------


def send(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the event name, e.g. resume/generation.requested")],
    data: Annotated[str, typer.Argument(help="the event's data as a JSON object")] = "{}",
    event_id: Annotated[
        str | None, typer.Option("--id", help="the event id: sending it again starts nothing new")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Send an Inngest-style event; print its id and the instances it started."""
    s = session(ctx)
    body = parse_json(data, "the event data")
    if not isinstance(body, dict):
        raise CliError("the event data must be a JSON object")

    async def work(client: WorkflowsClient, _: Target) -> int:
        result = await client.send(Event(name=name, data=body, id=event_id))
        if s.format(output) is not Format.text:
            s.emit(result)
            return 0
        s.out.print(f"sent {name}: event {', '.join(result.ids)}")
        if not result.started:
            s.out.print("no workflow listens to it: stored, nothing started")
        for run in result.started:
            s.out.print(f"started {run.workflow} {run.instance_id}")
        return 0

    s.call("send", work)


def trigger(
    ctx: typer.Context,
    workflow: Workflow,
    params: Annotated[str, typer.Argument(help="the parameters as a JSON object")] = "{}",
    instance_id: Annotated[
        str | None, typer.Option("--id", help="the instance id (default: a new one)")
    ] = None,
    watch_it: Annotated[
        bool, typer.Option("--watch", "-w", help="then follow it to the end (exit code as watch)")
    ] = False,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="read the token from this file")
    ] = None,
    interval: Interval = 0.5,
    output: OutputOpt = None,
) -> None:
    """Start WORKFLOW with PARAMS; the same --id twice is one instance."""
    s = session(ctx)
    if token_file is not None:
        s.token_file = token_file
    body = parse_json(params, "params")

    async def work(client: WorkflowsClient, _: Target) -> int:
        started = await client.trigger(workflow, body, instance_id)
        fmt = s.format(output)
        if watch_it:
            if fmt is Format.jsonl:
                s.emit({"type": "started", "started": started})
            elif fmt is Format.text:
                s.out.print(f"started {workflow} {started.instance_id}")
            return await follow(client, s, workflow, started.instance_id, interval, None, fmt)
        if fmt is not Format.text:
            s.emit(started)
        else:
            s.out.print(
                f"started {workflow} {started.instance_id} ({started.status.status})\n"
                f"  follow it: howlerhire watch {workflow} {started.instance_id}"
            )
        return 0

    s.call("trigger", work)


def status(
    ctx: typer.Context,
    workflow: Workflow,
    instance_id: InstanceId,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="read the token from this file")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """An instance's status, output and error (Cloudflare's shape: POST /status)."""
    s = session(ctx)
    if token_file is not None:
        s.token_file = token_file

    async def work(client: WorkflowsClient, _: Target) -> int:
        got = await client.get_status(workflow, instance_id)
        if s.format(output) is not Format.text:
            s.emit(got)
            return 0
        s.out.print(render.status(got.status))
        if got.output is not None:
            s.out.print(render.as_json(got.output))
        if got.error is not None:
            s.out.print(f"{got.error.name}: {got.error.message}", style="red")
        return 0

    s.call("status", work)


# -- looking ----------------------------------------------------------------------------


def list_(
    ctx: typer.Context,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="only this workflow")
    ] = None,
    status_: Annotated[
        str | None, typer.Option("--status", "-s", help=f"only this status: {', '.join(STATUSES)}")
    ] = None,
    user: Annotated[str | None, typer.Option("--user", "-u", help="the params' userId")] = None,
    since: Annotated[
        str | None, typer.Option(help="created at or after: ISO time or an age (15m, 2h, 3d)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="created before: ISO time or an age")] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="at most this many")
    ] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="the next page: a cursor printed before")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Instances in the order they started or finished, filtered; pages with --cursor."""
    s = session(ctx)
    wanted = _status(status_)
    after, before = parse_when(since, "--since"), parse_when(until, "--until")

    async def work(client: WorkflowsClient, _: Target) -> int:
        page = await collect(client, workflow, wanted, user, after, before, limit, cursor)
        s.page(
            output, page, page.instances, render.instances, "no instances match",
            page.next_cursor,
        )  # fmt: skip
        return 0

    s.call("list", work)


async def collect(
    client: WorkflowsClient,
    workflow: str | None,
    status_: Status | None,
    user: str | None,
    after: datetime | None,
    before: datetime | None,
    limit: int,
    cursor: str | None,
) -> InstancePage:
    """Up to `limit` matching instances from `cursor` on. The gateway filters workflow,
    status and user; the creation window is applied here, reading pages until `limit`
    match, and the cursor returned continues after the last instance read."""
    found: list[InstanceSummary] = []
    window = after is not None or before is not None
    while True:
        size = 200 if window else min(limit - len(found), 200)
        page = await client.list_instances(workflow, status_, user, size, cursor)
        for index, row in enumerate(page.instances):
            if (after is not None and row.created_at < after) or (
                before is not None and row.created_at >= before
            ):
                continue
            found.append(row)
            if len(found) == limit:
                rest = index + 1 < len(page.instances)
                next_cursor = (
                    await _cursor_after(client, workflow, status_, user, cursor, index + 1)
                    if rest
                    else page.next_cursor
                )
                return InstancePage(instances=found, next_cursor=next_cursor)
        cursor = page.next_cursor
        if cursor is None or not page.instances:
            return InstancePage(instances=found, next_cursor=None)


async def _cursor_after(
    client: WorkflowsClient,
    workflow: str | None,
    status_: Status | None,
    user: str | None,
    cursor: str | None,
    count: int,
) -> str | None:
    """The cursor after the first `count` rows from `cursor` (the gateway's own, by asking
    for exactly that many)."""
    page = await client.list_instances(workflow, status_, user, count, cursor)
    return page.next_cursor


def show(
    ctx: typer.Context,
    workflow: Workflow,
    instance_id: InstanceId,
    follow_it: Annotated[
        bool, typer.Option("--follow", "-f", help="then follow it live, as `watch`")
    ] = False,
    interval: Interval = 0.5,
    timeout: Timeout = None,
    output: OutputOpt = None,
) -> None:
    """One instance: params, output, error, the table of steps and the event inbox."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        fmt = s.format(output)
        if follow_it:
            return await follow(client, s, workflow, instance_id, interval, timeout, fmt)
        got = await client.instance(workflow, instance_id)
        if fmt is not Format.text:
            s.emit(got)
        else:
            s.out.print(render.detail(got))
        return 0

    s.call("show", work)


def watch(
    ctx: typer.Context,
    workflow: Workflow,
    instance_id: InstanceId,
    interval: Interval = 0.5,
    timeout: Timeout = None,
    output: OutputOpt = None,
) -> None:
    """Follow an instance step by step until it ends.

    Exit 0 complete, 1 errored, 3 terminated (4: --timeout passed first)."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        return await follow(client, s, workflow, instance_id, interval, timeout, s.format(output))

    s.call("watch", work)


async def follow(
    client: WorkflowsClient,
    s: Session,
    workflow: str,
    instance_id: str,
    interval: float,
    timeout: float | None,
    fmt: Format,
) -> int:
    """Poll the instance and report each step as it changes; a progress line on a
    terminal while it runs; the outcome's exit code at the end. Polling the status API
    keeps `watch` working through any proxy and needs nothing but the REST routes."""
    seen: dict[tuple[int, int], tuple[str, int]] = {}
    generation: int | None = None
    deadline = None if timeout is None else time.monotonic() + timeout
    live = fmt is Format.text and s.out.is_terminal
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=s.out,
        transient=True,
    )
    task = progress.add_task(f"{workflow} {instance_id}", total=None)
    if live:
        progress.start()
    try:
        while True:
            got = await client.instance(workflow, instance_id)
            if generation is not None and got.generation != generation:
                _say(
                    s,
                    fmt,
                    progress,
                    {"type": "generation", "generation": got.generation},
                    f"generation {got.generation} (restarted)",
                )
            generation = got.generation
            for step in got.steps:
                key = (got.generation, step.seq)
                if seen.get(key) != (step.status, step.attempts):
                    seen[key] = (step.status, step.attempts)
                    _report_step(s, fmt, progress, step, got.generation)
            if got.status in TERMINAL:
                if live:
                    progress.stop()
                    live = False
                _outcome(s, fmt, got)
                return TERMINAL[got.status]
            if live:
                # Drawn now, not at the refresh thread's next tick: each poll shows.
                progress.update(task, description=_doing(got), refresh=True)
            if deadline is not None and time.monotonic() >= deadline:
                if live:
                    progress.stop()
                    live = False
                s.fail(
                    "watch",
                    f"{workflow} {instance_id} is still {got.status} after {timeout:g}s",
                    EXIT_TIMEOUT,
                )
            await asyncio.sleep(interval)
    finally:
        if live:
            progress.stop()


def _doing(got: InstanceDetail) -> str:
    """The progress line: what the instance is doing now (a step's record is written when
    the step ends, so a running step is the one after the last recorded)."""
    last = got.steps[-1] if got.steps else None
    if last is not None and last.status in ("retrying", "sleeping", "waiting"):
        return f"{last.name} {last.status} ({render.waits(last)})"
    after = f" after {last.name}" if last is not None else ""
    return f"{got.workflow} {got.status}: step #{len(got.steps)}{after}"


def _say(s: Session, fmt: Format, progress: Progress, obj: dict[str, Any], text: str) -> None:
    if fmt is Format.jsonl:
        s.emit(obj)
    elif fmt is Format.text:
        progress.console.print(text) if progress.live.is_started else s.out.print(text)


def _report_step(
    s: Session, fmt: Format, progress: Progress, step: StepDetail, generation: int
) -> None:
    if fmt is Format.jsonl:
        s.emit({"type": "step", "generation": generation, "step": step})
    elif fmt is Format.text:
        line = render.step_line(step, generation)
        progress.console.print(line) if progress.live.is_started else s.out.print(line)


def _outcome(s: Session, fmt: Format, got: InstanceDetail) -> None:
    if fmt is Format.json:
        s.emit(got)
        return
    if fmt is Format.jsonl:
        s.emit({"type": "end", "instance": got})
        return
    took = render.span(got.started_at, got.ended_at)
    line = render.status(got.status)
    line.append(f"  {got.workflow} {got.instance_id} in {took}", style="")
    s.out.print(line)
    if got.output is not None:
        s.out.print(render.as_json(got.output))
    if got.error is not None:
        s.out.print(f"{got.error.name}: {got.error.message}", style="red")


# -- changing ---------------------------------------------------------------------------


def _change(action: Literal["pause", "resume", "terminate"]) -> Any:
    past = {"pause": "paused", "resume": "resumed", "terminate": "terminated"}[action]

    def command(
        ctx: typer.Context, workflow: Workflow, instance_id: InstanceId, output: OutputOpt = None
    ) -> None:
        s = session(ctx)

        async def work(client: WorkflowsClient, _: Target) -> int:
            got = await client.change_status(workflow, instance_id, action)
            s.show(output, got, f"{past} {workflow} {got.instance_id}: now {got.status}")
            return 0

        s.call(action, work)

    command.__doc__ = {
        "pause": "Pause an instance: it stops after the step it is in.",
        "resume": "Resume a paused instance.",
        "terminate": "Terminate an instance: it runs no further step.",
    }[action]
    return command


pause, resume, terminate = _change("pause"), _change("resume"), _change("terminate")


def restart(
    ctx: typer.Context,
    workflow: Workflow,
    instance_id: InstanceId,
    from_step: Annotated[
        str | None,
        typer.Option("--from", help="keep the results of the steps before this one (its name)"),
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Run an instance again as a new generation: from the start, or from a step."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        got = await client.restart(workflow, instance_id, from_step)
        if s.format(output) is not Format.text:
            s.emit(got)
        else:
            where = f" from {from_step}" if from_step else ""
            s.out.print(
                f"restarted {workflow} {got.instance_id}{where}: generation {got.generation} "
                f"({got.status})"
            )
        return 0

    s.call("restart", work)


event_app = typer.Typer(
    help="events sent to one instance (its wait_for_event)", no_args_is_help=True
)


@event_app.command("send")
def event_send(
    ctx: typer.Context,
    workflow: Workflow,
    instance_id: InstanceId,
    event_type: Annotated[str, typer.Argument(help="the type its wait_for_event waits for")],
    payload: Annotated[str | None, typer.Argument(help="the payload as JSON")] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="an idempotency key: a repeat is stored once")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Send an event to one instance's inbox."""
    s = session(ctx)
    body = parse_json(payload, "the payload")

    async def work(client: WorkflowsClient, _: Target) -> int:
        got = await client.send_instance_event(workflow, instance_id, event_type, body, key)
        s.show(output, got, f"sent {event_type} to {workflow} {instance_id}: event {got.event_id}")
        return 0

    s.call("event send", work)
