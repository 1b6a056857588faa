"""Operator commands: dead letters (list, show, redrive, redrive-all, purge), bulk actions
by filter (always counted first; acting needs --yes off a terminal), and the schedules."""

from __future__ import annotations

import asyncio
import io
import sys
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from shared.cli import render
from shared.cli.runs import OutputOpt, _status, session
from shared.cli.session import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    Format,
    Session,
    Target,
    parse_when,
)
from shared.client import BulkJob, WorkflowsClient
from shared.wire import STATUSES

Yes = Annotated[bool, typer.Option("--yes", "-y", help="act without asking")]

dlq_app = typer.Typer(
    help="dead letters: list, show, redrive, redrive-all, purge", no_args_is_help=True
)


def _confirm(s: Session, question: str, yes: bool, refusal: str) -> None:
    """Go on with --yes; ask on a terminal; refuse anywhere else (a script must say so)."""
    if yes:
        return
    if sys.stdin.isatty() and s.out.is_terminal:
        if typer.confirm(question, default=False):
            return
        raise CliError("cancelled", EXIT_USAGE)
    raise CliError(refusal, EXIT_USAGE)


@dlq_app.command("list")
def dlq_list(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    reason: Annotated[str | None, typer.Option(help="only letters with this reason")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=200)] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="the next page: a cursor printed before")
    ] = None,
    output: OutputOpt = None,
) -> None:
    """Dead letters, oldest first."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        page = await client.dead_letters(workflow, reason, limit, cursor)
        s.page(
            output, page, page.dead_letters, render.dead_letters, "no dead letters",
            page.next_cursor,
        )  # fmt: skip
        return 0

    s.call("dlq list", work)


@dlq_app.command("show")
def dlq_show(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the letter's seq (from dlq list)")],
    output: OutputOpt = None,
) -> None:
    """One dead letter: why, where from, and the start of its payload."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        letter = await client.dead_letter(seq)
        s.show(output, letter, render.dead_letter(letter))
        return 0

    s.call("dlq show", work)


@dlq_app.command("redrive")
def dlq_redrive(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="the letter's seq (from dlq list)")],
    output: OutputOpt = None,
) -> None:
    """Re-drive one dead letter (once, however often asked)."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        letter = await client.redrive(seq)
        text = f"re-drove dead letter {letter.seq} ({letter.workflow}, {letter.reason})"
        s.show(output, letter, text)
        return 0

    s.call("dlq redrive", work)


@dlq_app.command("redrive-all")
def dlq_redrive_all(
    ctx: typer.Context,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    output: OutputOpt = None,
) -> None:
    """Re-drive every dead letter that matches."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        count = await client.redrive_all(workflow, reason)
        s.show(output, {"redriven": count}, f"re-drove {count} dead letters")
        return 0

    s.call("dlq redrive-all", work)


@dlq_app.command("purge")
def dlq_purge(
    ctx: typer.Context,
    seq: Annotated[int | None, typer.Argument(help="only this letter")] = None,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    reason: Annotated[str | None, typer.Option()] = None,
    yes: Yes = False,
    output: OutputOpt = None,
) -> None:
    """Delete dead letters for good (asks first; --yes off a terminal)."""
    s = session(ctx)
    what = f"dead letter {seq}" if seq is not None else "every matching dead letter"
    _confirm(s, f"Purge {what}?", yes, f"refusing to purge {what} without --yes")

    async def work(client: WorkflowsClient, _: Target) -> int:
        count = await client.purge_dead_letters(workflow, reason, seq)
        s.show(output, {"purged": count}, f"purged {count} dead letters")
        return 0

    s.call("dlq purge", work)


Action = Literal["cancel", "terminate", "restart", "replay"]
ACTIONS: tuple[Action, ...] = ("cancel", "terminate", "restart", "replay")
bulk_app = typer.Typer(
    help="cancel, terminate, restart or replay every instance a filter selects",
    no_args_is_help=True,
)


def _bulk(action: Action) -> Any:
    def command(
        ctx: typer.Context,
        workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
        status_: Annotated[
            str | None, typer.Option("--status", "-s", help=f"one of {', '.join(STATUSES)}")
        ] = None,
        user: Annotated[str | None, typer.Option("--user", "-u", help="the params' userId")] = None,
        since: Annotated[str | None, typer.Option(help="created at or after (ISO or 2h)")] = None,
        until: Annotated[str | None, typer.Option(help="created before (ISO or 2h)")] = None,
        from_step: Annotated[
            str | None, typer.Option("--from", help="restart: keep the steps before this one")
        ] = None,
        rate: Annotated[float, typer.Option(min=0.1, help="instances per second")] = 50.0,
        key: Annotated[
            str | None, typer.Option(help="run a filter that already ran once more")
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="only count the instances")
        ] = False,
        yes: Yes = False,
        wait: Annotated[bool, typer.Option(help="follow the job to its end")] = True,
        output: OutputOpt = None,
    ) -> None:
        s = session(ctx)
        wanted = _status(status_)
        filters: dict[str, Any] = {
            "workflow": workflow,
            "status": wanted,
            "user_id": user,
            "created_after": parse_when(since, "--since"),
            "created_before": parse_when(until, "--until"),
            "from_step": from_step,
            "rate": rate,
            "key": key,
        }
        fmt = s.format(output)

        async def work(client: WorkflowsClient, _: Target) -> int:
            preview = await client.bulk(action, dry_run=True, **filters)
            if dry_run:
                if fmt is not Format.text:
                    s.emit(preview)
                else:
                    s.out.print(f"{action} would act on {preview.total} instances (dry run)")
                return 0
            if preview.total == 0 and key is None:
                if fmt is not Format.text:
                    s.emit(preview)
                else:
                    s.out.print(f"{action}: no instance matches, nothing to do")
                return 0
            # The question is asked outside the event loop's hot path but inside the
            # call: the count it shows is the gateway's, just now.
            _confirm(
                s,
                f"{action.capitalize()} {preview.total} instances?",
                yes,
                f"refusing to {action} {preview.total} instances without --yes "
                "(not a terminal; --dry-run only counts)",
            )
            job = await client.bulk(action, **filters)
            if fmt is Format.jsonl:
                s.emit(job)
            if wait:
                job = await _follow(client, s, fmt, job)
            if fmt is Format.json:
                s.emit(job)
            elif fmt is Format.text:
                s.out.print(
                    f"{action} {job.phase}: {job.acted} acted, {job.skipped} skipped, "
                    f"{job.failed} failed of {job.total} (job {job.id})"
                )
                for error in job.errors:
                    s.err.print(f"  {error}", style="red")
            return EXIT_FAILED if job.failed else 0

        s.call(f"bulk {action}", work)

    command.__doc__ = (
        f"{action.capitalize()} every instance the filters select: counted first, then "
        "done at --rate (asks first; off a terminal needs --yes)."
    )
    return command


async def _follow(client: WorkflowsClient, s: Session, fmt: Format, job: BulkJob) -> BulkJob:
    live = fmt is Format.text and s.out.is_terminal
    bar = Progress(
        TextColumn(f"{job.action}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        console=s.out,
        transient=True,
    )
    task = bar.add_task(job.action, total=job.total or None, note="")
    if live:
        bar.start()
    try:
        while job.phase not in ("preview", "done"):
            await asyncio.sleep(0.5)
            job = await client.bulk_job(job.id)
            if fmt is Format.jsonl:
                s.emit(job)
            bar.update(
                task,
                total=job.total or None,
                completed=job.position,
                note=f"{job.failed} failed" if job.failed else "",
            )
    finally:
        if live:
            bar.stop()
    return job


for _action in ACTIONS:
    bulk_app.command(_action)(_bulk(_action))


SCHEDULE_COLUMNS = (
    ("job", "job"),
    ("expression", "expression"),
    ("timezone", "tz"),
    ("lastSlot", "last slot fired"),
    ("nextFire", "next fire"),
    ("skipped", "skipped"),
)


def schedules_table(rows: list[dict[str, Any]]) -> str:
    """The schedules as aligned text (`-` where a value is missing), as `schedules` prints."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=4000, soft_wrap=True, color_system=None)
    console.print(_schedule_grid(rows))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


def _schedule_grid(rows: list[dict[str, Any]]) -> Any:
    grid = render.table(*(title for _, title in SCHEDULE_COLUMNS))
    for row in rows:
        grid.add_row(
            *("-" if row.get(key) is None else str(row[key]) for key, _ in SCHEDULE_COLUMNS)
        )
    return grid


def schedules(ctx: typer.Context, output: OutputOpt = None) -> None:
    """The cron jobs: expression, time zone, last slot fired, next fire (GET /schedules)."""
    s = session(ctx)

    async def work(client: WorkflowsClient, _: Target) -> int:
        rows = await client.schedules()
        fmt = s.format(output)
        if fmt is Format.json:
            s.emit(rows)
        elif fmt is Format.jsonl:
            s.emit_lines(rows)
        elif not rows:
            s.out.print("no schedules recorded yet (is the scheduler running?)")
        else:
            s.out.print(_schedule_grid(rows))
        return 0

    s.call("schedules", work)
