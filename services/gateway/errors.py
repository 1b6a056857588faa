"""How failures become responses: one JSON shape, the right status, nothing internal.

`ApiError` is raised by handlers for what the caller got wrong. The engine's domain errors
(`UnknownWorkflowError`, `InstanceNotFoundError`, …) are mapped here once, by `DOMAIN_ERRORS`
(a route whose answer differs says so in its `opt["errors"]`), never in a try/except per
route. NATS trouble becomes 503 with Retry-After (the caller retries with the same ids,
which is safe). Anything else is a bug: logged with a correlation id, answered 500 with
only that id.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from typing import Any

import nats.errors
from litestar import Request, Response
from litestar.exceptions import HTTPException

from services.gateway.auth import redacted
from services.gateway.schemas import BodyError, ErrorBody
from shared.bus import TRANSIENT
from shared.errors import (
    AppError,
    DeadLetterNotFoundError,
    InstanceNotFoundError,
    InvalidEventError,
    InvalidTransitionError,
    StepNotFoundError,
    UnknownWorkflowError,
)
from shared.unsubscribe import InvalidTokenError

log = logging.getLogger(__name__)

UNAVAILABLE = (*TRANSIENT, nats.errors.Error, ConnectionError, asyncio.TimeoutError)
RETRY_AFTER = "2"


class ApiError(Exception):
    """A request the gateway refuses: `status`, a message for the caller, and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def error_response(
    status: int,
    message: str,
    field: str | None = None,
    *,
    correlation_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[ErrorBody]:
    return Response(
        ErrorBody(error=message, field=field, correlation_id=correlation_id),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def on_api_error(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    assert isinstance(exc, ApiError | BodyError)
    return error_response(exc.status, exc.message, exc.field)


# (status, message — None: the error's own text —, field to blame)
Answer = tuple[int, str | None, str | None]

#: Each domain error the engine raises → the answer every route gives for it.
DOMAIN_ERRORS: Mapping[type[AppError], Answer] = {
    UnknownWorkflowError: (404, "unknown workflow", "workflow"),
    InstanceNotFoundError: (404, "no such instance", "instanceId"),
    InvalidTransitionError: (409, None, "status"),
    # restart from a step the instance has not recorded
    StepNotFoundError: (409, None, "from.name"),
    DeadLetterNotFoundError: (404, None, "seq"),
    InvalidTokenError: (400, None, "token"),  # an unsubscribe link's
    InvalidEventError: (422, None, "instanceId"),
}


def on_domain_error(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """A domain error → its row of `DOMAIN_ERRORS`, or of the route's `opt["errors"]`."""
    overrides: Mapping[type, Answer] = request.route_handler.opt.get("errors", {})
    table: Mapping[type, Answer] = DOMAIN_ERRORS
    for kind in type(exc).__mro__:
        answer = overrides.get(kind) or table.get(kind)
        if answer is not None:
            status, message, field = answer
            return error_response(status, message or str(exc), field)
    return on_unexpected(request, exc)


def on_http_exception(_: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    """Litestar's own refusals (404, 405, 413, a bad Content-Length): same JSON shape."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status >= 500:
        return on_unexpected(_, exc)
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else "request refused"
    if status == 413:
        message = "the request body is too large"
    return error_response(status, message, headers=exc.headers)


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    if isinstance(exc, nats.errors.MaxPayloadError):
        return error_response(413, "the request is too large to be stored")
    if isinstance(exc, UNAVAILABLE):
        log.warning(
            "%s %s: NATS unavailable (%s)",
            request.method,
            redacted(request.scope.get("path", "")),
            type(exc).__name__,
        )
        return error_response(
            503,
            "the event store is unavailable; retry with the same ids",
            headers={"Retry-After": RETRY_AFTER},
        )
    correlation_id = uuid.uuid4().hex
    if isinstance(exc, HTTPException) and "disconnect" in str(exc.detail):
        log.info("client disconnected before its request was read [%s]", correlation_id)
    else:
        log.error(
            "unexpected error [%s] on %s %s",
            correlation_id,
            request.method,
            redacted(request.scope.get("path", "")),
            exc_info=exc,
        )
    return error_response(500, "internal error", correlation_id=correlation_id)
