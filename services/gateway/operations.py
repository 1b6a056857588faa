"""Operator routes: dead letters (list, show, re-drive, purge) and bulk actions by filter.

```
GET  /dlq?workflow=&reason=&limit=&cursor=   dead letters, oldest first
GET  /dlq/{seq}                              one dead letter
POST /dlq/{seq}/redrive                      re-drive one (once, however often asked)
POST /dlq/redrive  {workflow?, reason?}      re-drive every matching one
POST /dlq/purge    {workflow?, reason?, seq?} delete them
POST /bulk/{action} {workflow?, status?, userId?, createdAfter?, createdBefore?,
                     from?, rate?, dryRun?, key?}   cancel|terminate|restart|replay
GET  /bulk/{id}                              a bulk job's progress
```
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from msgspec import Meta

from services.gateway.compat import BAD
from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from services.gateway.instances import MAX_PAGE, USER_ID_MAX, _cursor
from services.gateway.schemas import Body, ErrorBody, ErrorDetail, StepRef, decode
from shared.wire import STATUSES
from shared.workflow import BulkFilter, BulkJob
from shared.workflow.bulk import ACTIONS, job_id
from shared.workflow.model import DeadLetter

log = logging.getLogger(__name__)
NOT_FOUND = {404: ErrorBody, **BAD}
MAX_RATE = 1000.0


class DeadLetterOut(Body, frozen=True, kw_only=True, omit_defaults=True):
    """A message that could not be processed, and why."""

    seq: int
    workflow: str
    reason: str
    subject: str
    recorded_at: datetime
    instance_id: str | None = None
    stream_seq: int | None = None
    deliveries: int | None = None
    error: ErrorDetail | None = None
    payload_preview: str = ""


class DeadLetterList(Body, frozen=True, kw_only=True):
    dead_letters: list[DeadLetterOut]
    next_cursor: str | None = None


class DeadLetterFilter(Body, frozen=True, kw_only=True):
    workflow: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    reason: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class PurgeRequest(DeadLetterFilter, frozen=True, kw_only=True):
    seq: Annotated[int, Meta(ge=1)] | None = None


class Redriven(Body, frozen=True, kw_only=True):
    redriven: int


class Purged(Body, frozen=True, kw_only=True):
    purged: int


class BulkRequest(Body, frozen=True, kw_only=True):
    """Which instances, and how: `dryRun` only counts; `rate` caps actions per second;
    `from` (restart only) keeps the steps before it; `key` makes a new job of a filter
    that already ran."""

    workflow: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    status: str | None = None
    user_id: Annotated[str, Meta(min_length=1, max_length=USER_ID_MAX)] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    from_: StepRef | None = msgspec.field(default=None, name="from")
    rate: Annotated[float, Meta(gt=0, le=MAX_RATE)] = 50.0
    dry_run: bool = False
    key: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class BulkOut(Body, frozen=True, kw_only=True, omit_defaults=True):
    """A bulk job: `phase` preview (dry run), selecting, running or done; `position` of
    `total` handled, of which `acted` changed, `skipped` were no longer eligible."""

    id: str
    action: str
    phase: str
    total: int  # the counts have no default: always on the wire, zeros included
    position: int
    acted: int
    skipped: int
    failed: int
    errors: list[str] = msgspec.field(default_factory=list)
    workflow: str | None = None
    status: str | None = None
    user_id: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    from_step: str | None = None
    rate: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None


def _letter(seq: int, letter: DeadLetter) -> DeadLetterOut:
    error = letter.error
    return DeadLetterOut(
        seq=seq,
        workflow=letter.workflow,
        reason=letter.reason,
        subject=letter.subject,
        recorded_at=letter.recorded_at,
        instance_id=letter.instance_id,
        stream_seq=letter.stream_seq,
        deliveries=letter.deliveries,
        error=None if error is None else ErrorDetail(name=error.name, message=error.message),
        payload_preview=letter.payload_preview,
    )


def _job(job: BulkJob) -> BulkOut:
    where = job.filter
    return BulkOut(
        id=job.id,
        action=job.action,
        phase=job.phase,
        total=job.total,
        position=job.position,
        acted=job.acted,
        skipped=job.skipped,
        failed=job.failed,
        errors=job.errors,
        workflow=where.workflow,
        status=where.status,
        user_id=where.user,
        created_after=where.created_after,
        created_before=where.created_before,
        from_step=job.from_step,
        rate=None if job.phase == "preview" else job.rate,
        created_at=None if job.phase == "preview" else job.created_at,
        updated_at=None if job.phase == "preview" else job.updated_at,
        finished_at=job.finished_at,
    )


def _workflow(engine: EngineDep, workflow: str | None) -> None:
    if workflow is not None and workflow not in engine.routes:
        raise ApiError(404, "unknown workflow", "workflow")


def _seq(seq: str) -> int:
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 18 and int(seq) >= 1):
        raise ApiError(404, "no such dead letter", "seq")
    return int(seq)


@get(
    "/dlq",
    opt={
        "summary": "List dead letters",
        "query": {
            "workflow": "only this workflow's",
            "reason": "only this reason",
            "limit": f"page size, 1-{MAX_PAGE} (default 50)",
            "cursor": "the nextCursor of the previous page",
        },
        "responses": {200: DeadLetterList, **NOT_FOUND},
    },
)
async def list_dead_letters(
    engine: EngineDep,
    workflow: FromQuery[str | None] = None,
    reason: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
) -> DeadLetterList:
    """Dead letters (workflow, reason, time, instance), oldest first. They are kept until
    re-driven or purged."""
    _workflow(engine, workflow)
    size = 50
    if limit is not None:
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit[:4]) <= MAX_PAGE):
            raise ApiError(400, f"limit must be a number from 1 to {MAX_PAGE}", "limit")
        size = int(limit)
    page = await engine.dead_letters(workflow, reason, size, _cursor(cursor))
    return DeadLetterList(
        dead_letters=[_letter(seq, letter) for seq, letter in page.items],
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


@get(
    "/dlq/{seq:str}",
    opt={"summary": "One dead letter", "responses": {200: DeadLetterOut, **NOT_FOUND}},
)
async def get_dead_letter(engine: EngineDep, seq: FromPath[str]) -> DeadLetterOut:
    """The dead letter at that sequence, with a preview of its message."""
    number = _seq(seq)
    return _letter(number, await engine.dead_letter(number))


@post(
    "/dlq/{seq:str}/redrive",
    status_code=200,
    opt={"summary": "Re-drive one dead letter", "responses": {200: DeadLetterOut, **NOT_FOUND}},
)
async def redrive_dead_letter(engine: EngineDep, seq: FromPath[str]) -> DeadLetterOut:
    """Send the letter's message through its workflow again, after a fix: the instance
    the engine gave up on continues from its recorded steps. Runs once however often it is
    asked; a letter already re-driven → 404."""
    number = _seq(seq)
    return _letter(number, await engine.redrive(number))


@post(
    "/dlq/redrive",
    status_code=200,
    opt={
        "summary": "Re-drive every matching dead letter",
        "body": DeadLetterFilter,
        "responses": {200: Redriven, **NOT_FOUND},
    },
)
async def redrive_dead_letters(request: Request[Any, Any, Any], engine: EngineDep) -> Redriven:
    """Every dead letter of `workflow` (and `reason`); an empty body means all."""
    raw = await request.body()
    where: DeadLetterFilter = decode(raw, DeadLetterFilter) if raw.strip() else DeadLetterFilter()
    _workflow(engine, where.workflow)
    return Redriven(redriven=await engine.redrive_all(where.workflow, where.reason))


@post(
    "/dlq/purge",
    status_code=200,
    opt={
        "summary": "Delete dead letters",
        "body": PurgeRequest,
        "responses": {200: Purged, **NOT_FOUND},
    },
)
async def purge_dead_letters(request: Request[Any, Any, Any], engine: EngineDep) -> Purged:
    """One (`seq`) or every one matching `workflow` and `reason`."""
    where: PurgeRequest = decode(await request.body(), PurgeRequest)
    _workflow(engine, where.workflow)
    purged = await engine.purge_dead_letters(where.workflow, where.reason, where.seq)
    return Purged(purged=purged)


# Bulk jobs started by this process; kept referenced until they end.
_running: dict[str, asyncio.Task[BulkJob]] = {}


def _ended(task: asyncio.Task[BulkJob]) -> None:
    for key, value in list(_running.items()):
        if value is task:
            del _running[key]
    if not task.cancelled() and task.exception() is not None:
        log.error("bulk job failed (ask again to resume it)", exc_info=task.exception())


@post(
    "/bulk/{action:str}",
    status_code=202,
    opt={
        "summary": "Cancel, terminate, restart or replay every matching instance",
        "body": BulkRequest,
        "responses": {200: BulkOut, 202: BulkOut, **NOT_FOUND},
    },
)
async def start_bulk(
    request: Request[Any, Any, Any], engine: EngineDep, action: FromPath[str]
) -> Response[BulkOut]:
    """`dryRun: true` → 200 with the number of instances it would act on now. Otherwise
    → 202 with the job (its id is derived from the request: asking again resumes or
    returns the same job); follow it with `GET /bulk/{id}`."""
    if action not in ACTIONS:
        raise ApiError(404, f"action must be one of {', '.join(ACTIONS)}", "action")
    body: BulkRequest = decode(await request.body(), BulkRequest)
    _workflow(engine, body.workflow)
    if body.status is not None and body.status not in STATUSES:
        raise ApiError(422, f"status must be one of {', '.join(STATUSES)}", "status")
    if body.from_ is not None and action != "restart":
        raise ApiError(422, "`from` applies to restart only", "from")
    where = BulkFilter(
        workflow=body.workflow,
        status=body.status,
        user=body.user_id,
        created_after=body.created_after,
        created_before=body.created_before,
    )
    from_step = None if body.from_ is None else body.from_.name
    if body.dry_run:
        preview = await engine.bulk(action, where, dry_run=True, from_step=from_step)  # type: ignore[arg-type]
        return Response(_job(preview), status_code=200)
    jid, job = await launch_bulk(engine, action, where, from_step, body.rate, body.key)
    if job is None:
        return Response(
            BulkOut(
                id=jid,
                action=action,
                phase="selecting",
                total=0,
                position=0,
                acted=0,
                skipped=0,
                failed=0,
            ),
            status_code=202,
        )
    return Response(_job(job), status_code=200 if job.phase == "done" else 202)


async def launch_bulk(
    engine: EngineDep,
    action: str,
    where: BulkFilter,
    from_step: str | None,
    rate: float,
    key: str | None,
) -> tuple[str, BulkJob | None]:
    """Start (or resume) the bulk job of this request in this process, unless it runs
    already; its id, and the job as recorded (None before its first record). The
    dashboard's bulk form uses this too."""
    jid = job_id(action, where, from_step, key)
    if jid not in _running:
        task = asyncio.create_task(
            engine.bulk(action, where, from_step=from_step, rate=rate, key=key),  # type: ignore[arg-type]
            name=f"bulk:{jid}",
        )
        _running[jid] = task
        task.add_done_callback(_ended)
        await asyncio.sleep(0.05)  # let it record the job before we read it
    return jid, await engine.bulk_job(jid)


@get(
    "/bulk/{job:str}",
    opt={"summary": "A bulk job's progress", "responses": {200: BulkOut, **NOT_FOUND}},
)
async def get_bulk(engine: EngineDep, job: FromPath[str]) -> BulkOut:
    """Phase, counts and errors of a bulk job."""
    if not (job.isascii() and job.isalnum() and len(job) <= 64):
        raise ApiError(404, "no such bulk job", "job")
    found = await engine.bulk_job(job)
    if found is None:
        raise ApiError(404, "no such bulk job", "job")
    return _job(found)
