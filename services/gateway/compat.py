"""The original Cloudflare worker's API, kept wire-compatible: /health, /trigger, /status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post

from services.gateway.engine import EngineDep
from services.gateway.errors import UNAVAILABLE, ApiError
from services.gateway.schemas import (
    ErrorBody,
    Health,
    NatsHealth,
    StatusRequest,
    TriggerRequest,
    TriggerResponse,
    WorkflowStatus,
    check_depth,
    check_params,
    decode,
    status_of,
)
from shared.errors import UnknownWorkflowError

BAD = {400: ErrorBody, 401: ErrorBody, 413: ErrorBody, 422: ErrorBody, 503: ErrorBody}
# The original worker answered an unknown workflow with 400 (the instance API: 404).
COMPAT_ERRORS = {UnknownWorkflowError: (400, "unknown workflow", "workflow")}


def iso_now() -> str:
    """`new Date().toISOString()`: UTC, milliseconds, `Z`."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@get(
    "/health",
    opt={
        "summary": "Liveness and NATS reachability (no auth)",
        "responses": {200: Health, 503: Health},
    },
)
async def health(engine: EngineDep) -> Response[Health]:
    """`{"status":"ok","timestamp":…}` with NATS reachability; 503 with the reason when
    NATS does not answer."""
    try:
        await engine.ping()
    except UNAVAILABLE as exc:
        reason = str(exc) if isinstance(exc, ConnectionError) else type(exc).__name__
        body = Health(
            status="unavailable",
            timestamp=iso_now(),
            nats=NatsHealth(connected=False, error=reason or "unreachable"),
        )
        return Response(body, status_code=503, headers={"Retry-After": "2"})
    return Response(Health(status="ok", timestamp=iso_now(), nats=NatsHealth(connected=True)))


@post(
    "/trigger",
    status_code=200,
    opt={
        "summary": "Start a workflow instance (the original worker's API)",
        "body": TriggerRequest,
        "responses": {200: TriggerResponse, **BAD},
        "errors": COMPAT_ERRORS,
    },
)
async def trigger(request: Request[Any, Any, Any], engine: EngineDep) -> TriggerResponse:
    """Start `workflow` with `params`. The same `instanceId` twice gives the same instance
    (and its current status), never a second run. Unknown workflow, or params that do
    not fit the workflow's (`shared.events`) → 400 naming the field."""
    body: TriggerRequest = decode(await request.body(), TriggerRequest)
    params = body.params if body.params is not None else {}
    check_depth(params, "params")
    if body.workflow not in engine.routes:
        raise ApiError(400, "unknown workflow", "workflow")
    check_params(body.workflow, params)
    state, _ = await engine.trigger(body.workflow, params, body.instance_id)
    return TriggerResponse(success=True, instance_id=state.instance_id, status=status_of(state))


@post(
    "/status",
    status_code=200,
    opt={
        "summary": "The status of one instance (the original worker's API)",
        "body": StatusRequest,
        "responses": {200: WorkflowStatus, 404: ErrorBody, **BAD},
        "errors": COMPAT_ERRORS,
    },
)
async def status(request: Request[Any, Any, Any], engine: EngineDep) -> WorkflowStatus:
    """Cloudflare's status: `{status, output?, error?:{name,message}}`. Unknown workflow →
    400; unknown instance → 404."""
    body: StatusRequest = decode(await request.body(), StatusRequest)
    if body.workflow not in engine.routes:
        raise ApiError(400, "unknown workflow", "workflow")
    return status_of(await engine.get(body.workflow, body.instance_id))
