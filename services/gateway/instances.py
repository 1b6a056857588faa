"""The instance resource, in the shape of Cloudflare's instance API.

```
GET   /workflows                                              the workflows and their events
GET   /instances?workflow=&status=&userId=&limit=&cursor=     list (by start or finish)
GET   /workflows/{workflow}/instances?status=&userId=&…       list one workflow's
POST  /workflows/{workflow}/instances                         create {params?, instanceId?}
GET   /workflows/{workflow}/instances/{id}                    detail, with every step
PATCH /workflows/{workflow}/instances/{id}/status             {"status": "pause"|"resume"|
                                                               "terminate"|"restart",
                                                               "from"?: {"name": step}}
POST  /workflows/{workflow}/instances/{id}/events/{type}      send an event (body = payload)
```
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from litestar import Request, Response, get, patch, post
from litestar.params import FromPath, FromQuery, QueryParameter

from services.gateway.compat import BAD
from services.gateway.engine import Engine, EngineDep
from services.gateway.errors import ApiError
from services.gateway.schemas import (
    CreateInstanceRequest,
    ErrorBody,
    EventAccepted,
    InstanceAction,
    InstanceDetail,
    InstancePage,
    WorkflowInfo,
    WorkflowList,
    check_depth,
    check_params,
    decode,
    detail_of,
    summary_of,
)
from shared.bus import INSTANCE_ID
from shared.errors import InvalidTransitionError
from shared.wire import STATUSES

NOT_FOUND = {404: ErrorBody, 409: ErrorBody, **BAD}
MAX_PAGE = 200
DEFAULT_PAGE = 50
IDEMPOTENCY_KEY_MAX = 128
USER_ID_MAX = 256
EVENT_TYPE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def _event_id(workflow: str, instance_id: str, key: str | None) -> str | None:
    """A caller's idempotency key, as a fixed-size id safe in a message-id header."""
    if key is None:
        return None
    return "k" + hashlib.sha256(f"{workflow}\n{instance_id}\n{key}".encode()).hexdigest()[:40]


def _known(engine: Engine, workflow: str) -> None:
    if workflow not in engine.routes:
        raise ApiError(404, "unknown workflow", "workflow")


def _instance_id(instance_id: str) -> str:
    if not INSTANCE_ID.fullmatch(instance_id):
        raise ApiError(404, "no such instance", "instanceId")
    return instance_id


def _page_args(
    status: str | None,
    limit: str | None,
    cursor: str | None,
) -> tuple[int, int | None]:
    """Query strings are checked here, so that a bad one is named like a bad body field."""
    if status is not None and status not in STATUSES:
        raise ApiError(400, f"status must be one of {', '.join(STATUSES)}", "status")
    size = DEFAULT_PAGE
    if limit is not None:
        if not (limit.isascii() and limit.isdigit() and 1 <= int(limit[:4]) <= MAX_PAGE):
            raise ApiError(400, f"limit must be a number from 1 to {MAX_PAGE}", "limit")
        size = int(limit)
    return size, _cursor(cursor)


def _cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18 or int(cursor) < 1:
        raise ApiError(400, "cursor must be a value returned as nextCursor", "cursor")
    return int(cursor)


async def _page(
    engine: EngineDep,
    workflow: str | None,
    status: str | None,
    limit: str | None,
    cursor: str | None,
    user: str | None = None,
) -> InstancePage:
    size, start = _page_args(status, limit, cursor)
    if user is not None and not 0 < len(user) <= USER_ID_MAX:
        raise ApiError(400, f"userId must be 1-{USER_ID_MAX} characters", "userId")
    page = await engine.list(workflow, status, size, start, user=user)
    return InstancePage(
        instances=[summary_of(state) for state in page.items],
        next_cursor=None if page.next_cursor is None else str(page.next_cursor),
    )


@get(
    "/workflows",
    opt={
        "summary": "The workflows and the events that start them",
        "responses": {200: WorkflowList, 401: ErrorBody},
    },
)
async def list_workflows(engine: EngineDep) -> WorkflowList:
    """Every workflow id with its trigger events (aliases included)."""
    return WorkflowList(
        workflows=[WorkflowInfo(id=wf, events=list(events)) for wf, events in engine.routes.items()]
    )


PAGE_QUERY = {
    "status": "only instances with this status",
    "userId": "only instances of this user (`userId` in their params)",
    "limit": f"page size, 1-{MAX_PAGE} (default 50)",
    "cursor": "the nextCursor of the previous page",
}


@get(
    "/instances",
    opt={
        "summary": "List instances of every workflow",
        "query": {"workflow": "only this workflow's instances", **PAGE_QUERY},
        "responses": {
            200: InstancePage,
            401: ErrorBody,
            404: ErrorBody,
            400: ErrorBody,
            503: ErrorBody,
        },
    },
)
async def list_instances(
    engine: EngineDep,
    workflow: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    user_id: Annotated[str | None, QueryParameter(name="userId")] = None,
) -> InstancePage:
    """Instances in the order they started or finished, filtered by workflow, status and
    user, `limit` at a time; pass `nextCursor` back as `cursor` for the next page (null:
    no more). Pages read the list index: their cost does not grow with the instances."""
    if workflow is not None:
        _known(engine, workflow)
    return await _page(engine, workflow, status, limit, cursor, user_id)


@get(
    "/workflows/{workflow:str}/instances",
    opt={
        "summary": "List one workflow's instances",
        "query": PAGE_QUERY,
        "responses": {
            200: InstancePage,
            401: ErrorBody,
            404: ErrorBody,
            400: ErrorBody,
            503: ErrorBody,
        },
    },
)
async def list_workflow_instances(
    engine: EngineDep,
    workflow: FromPath[str],
    status: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    cursor: FromQuery[str | None] = None,
    user_id: Annotated[str | None, QueryParameter(name="userId")] = None,
) -> InstancePage:
    """As `GET /instances?workflow=…`."""
    _known(engine, workflow)
    return await _page(engine, workflow, status, limit, cursor, user_id)


@post(
    "/workflows/{workflow:str}/instances",
    opt={
        "summary": "Create an instance (idempotent by instanceId)",
        "body": CreateInstanceRequest,
        "responses": {201: InstanceDetail, 200: InstanceDetail, **NOT_FOUND},
    },
)
async def create_instance(
    request: Request[Any, Any, Any],
    engine: EngineDep,
    workflow: FromPath[str],
) -> Response[InstanceDetail]:
    """201 with the new instance, or 200 with the existing one of that `instanceId`;
    params that do not fit the workflow's (`shared.events`) → 400 naming the field."""
    _known(engine, workflow)
    raw = await request.body()
    body: CreateInstanceRequest = (
        decode(raw, CreateInstanceRequest) if raw.strip() else CreateInstanceRequest()
    )
    params = body.params if body.params is not None else {}
    check_depth(params, "params")
    check_params(workflow, params)
    state, created = await engine.trigger(workflow, params, body.instance_id)
    return Response(detail_of(state), status_code=201 if created else 200)


@get(
    "/workflows/{workflow:str}/instances/{instance_id:str}",
    opt={
        "summary": "One instance with per-step detail",
        "responses": {200: InstanceDetail, **NOT_FOUND},
    },
)
async def get_instance(
    engine: EngineDep, workflow: FromPath[str], instance_id: FromPath[str]
) -> InstanceDetail:
    """Status, params, output, error, timestamps, and each step's attempts, timings,
    error and output; events sent to the instance."""
    _known(engine, workflow)
    return detail_of(await engine.get(workflow, _instance_id(instance_id)))


@patch(
    "/workflows/{workflow:str}/instances/{instance_id:str}/status",
    opt={
        "summary": "Pause, resume, terminate or restart an instance",
        "body": InstanceAction,
        "responses": {200: InstanceDetail, **NOT_FOUND},
    },
)
async def change_status(
    request: Request[Any, Any, Any],
    engine: EngineDep,
    workflow: FromPath[str],
    instance_id: FromPath[str],
) -> InstanceDetail:
    """`{"status": "pause"}` stops at the next step boundary; `resume` continues;
    `terminate` ends it; `restart` runs it again from the start (same params), or with
    `"from": {"name": step}` from that step on, keeping the results recorded before it.
    A change the instance's status does not allow, or a step it has not recorded → 409."""
    _known(engine, workflow)
    action: InstanceAction = decode(await request.body(), InstanceAction)
    if action.from_ is not None and action.status != "restart":
        raise ApiError(422, "`from` applies to restart only", "from")
    iid = _instance_id(instance_id)
    if action.from_ is not None:
        return detail_of(await engine.restart(workflow, iid, action.from_.name))
    operation = {
        "pause": engine.pause,
        "resume": engine.resume,
        "terminate": engine.terminate,
        "restart": engine.restart,
    }[action.status]
    return detail_of(await operation(workflow, iid))


@post(
    "/workflows/{workflow:str}/instances/{instance_id:str}/events/{event_type:str}",
    status_code=202,
    opt={
        "summary": "Send an event to an instance (for its wait_for_event)",
        "body": Any,
        "responses": {202: EventAccepted, **NOT_FOUND},
        "headers": {"Idempotency-Key": "makes a repeated send deliver the event once"},
        # A finished instance takes no events: the instance, not the body, is to blame.
        "errors": {InvalidTransitionError: (409, None, "instanceId")},
    },
)
async def send_instance_event(
    request: Request[Any, Any, Any],
    engine: EngineDep,
    workflow: FromPath[str],
    instance_id: FromPath[str],
    event_type: FromPath[str],
) -> EventAccepted:
    """The body (any JSON, or empty) is the event's payload. An `Idempotency-Key` header
    makes repeats deliver the event once. A finished instance → 409."""
    _known(engine, workflow)
    _instance_id(instance_id)
    if not EVENT_TYPE.fullmatch(event_type):
        raise ApiError(422, "eventType must be 1-100 characters of [A-Za-z0-9_.-]", "eventType")
    payload: Any = decode(await request.body(), Any, allow_empty=True)
    check_depth(payload, "payload")
    key = request.headers.get("idempotency-key")
    if key is not None and not (0 < len(key) <= IDEMPOTENCY_KEY_MAX):
        raise ApiError(
            400, f"Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters", "Idempotency-Key"
        )
    event_id = await engine.send_event(
        workflow,
        instance_id,
        event_type,
        payload,
        event_id=_event_id(workflow, instance_id, key),
    )
    return EventAccepted(
        workflow=workflow, instance_id=instance_id, type=event_type, event_id=event_id
    )
