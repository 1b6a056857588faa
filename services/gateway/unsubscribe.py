"""One-click unsubscribe (`GET`/`POST /unsubscribe?token=…`, no bearer token) and `GET /schedules`.

The token is the proof (`shared.unsubscribe`): signed with UNSUBSCRIBE_SECRET, for one
user and email type, until an expiry. A forged, tampered or expired token is 400 and
changes nothing. `POST` (RFC 8058: what Gmail's and Yahoo's one-click button sends)
publishes `email/unsubscribe.requested`, whose workflow in the notify service turns the
preference off; the event id is derived from the token, so repeated clicks are one
change. `GET` (a person following the link) shows a confirmation page whose button
POSTs: link scanners that fetch every URL in a message must not unsubscribe anyone.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import SkipValidation

from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from services.gateway.schemas import ErrorBody
from shared.schedules import ScheduleState, read_schedules
from shared.unsubscribe import Unsubscribe, UnsubscribeLinks
from shared.workflow import EventEnvelope

EVENT = "email/unsubscribe.requested"
PUBLIC_PATHS = frozenset({"/unsubscribe"})

LinksDep = NamedDependency[SkipValidation[UnsubscribeLinks | None]]

_LABELS = {
    "weekly_summary": "weekly summary emails",
    "resume_ready": "resume-ready emails",
    "job_matches": "job match emails",
    "application_updates": "application update emails",
    "marketing": "marketing emails",
}


class Unsubscribed(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    unsubscribed: bool
    email_type: str


def _verify(request: Request[Any, Any, Any], links: UnsubscribeLinks | None) -> Unsubscribe:
    if links is None:
        raise ApiError(503, "unsubscribe links are not configured (UNSUBSCRIBE_SECRET)", None)
    token = request.query_params.get("token", "")
    return links.verify(token, datetime.now(UTC))  # InvalidTokenError: 400 (errors.py)


def _page(title: str, body: str, status: int = 200) -> Response[str]:
    document = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:480px;margin:40px auto">'
        f'<h1 style="font-size:20px">{html.escape(title)}</h1>{body}</body></html>'
    )
    return Response(document, status_code=status, media_type=MediaType.HTML)


@get(
    "/unsubscribe",
    opt={
        "summary": "Confirm unsubscribing from one kind of email (signed link, no auth)",
        "query": {"token": "the signed token from the email"},
        "responses": {200: Any, 400: ErrorBody, 503: ErrorBody},
    },
)
async def unsubscribe_page(request: Request[Any, Any, Any], links: LinksDep) -> Response[str]:
    """A page with one button that unsubscribes (it POSTs the same URL); changes nothing."""
    claim = _verify(request, links)
    label = _LABELS.get(claim.email_type, claim.email_type)
    token = html.escape(request.query_params.get("token", ""))
    return _page(
        f"Unsubscribe from {label}?",
        f'<form method="post" action="?token={token}">'
        '<button type="submit" style="font-size:16px;padding:8px 16px">'
        f"Unsubscribe</button></form><p>You will no longer receive {html.escape(label)}.</p>",
    )


@post(
    "/unsubscribe",
    status_code=200,
    opt={
        "summary": "One-click unsubscribe (RFC 8058; signed link, no auth)",
        "query": {"token": "the signed token from the email"},
        "responses": {200: Unsubscribed, 400: ErrorBody, 503: ErrorBody},
    },
)
async def unsubscribe_now(
    request: Request[Any, Any, Any], engine: EngineDep, links: LinksDep
) -> Response[Any]:
    """Turn the email type's preference off (through the notify service, durably)."""
    claim = _verify(request, links)
    token_id = f"unsubscribe:{claim.user_id}:{claim.email_type}:{int(claim.expires.timestamp())}"
    await engine.send(
        [
            EventEnvelope(
                name=EVENT,
                data={"userId": str(claim.user_id), "emailType": claim.email_type},
                id=token_id,
            )
        ]
    )
    if "text/html" in request.headers.get("accept", ""):
        label = _LABELS.get(claim.email_type, claim.email_type)
        return _page("You are unsubscribed", f"<p>You will no longer receive {label}.</p>")
    return Response(Unsubscribed(unsubscribed=True, email_type=claim.email_type))


@get(
    "/schedules",
    opt={
        "summary": "The cron jobs: expression, last slot fired, next fire time",
        "responses": {200: list[ScheduleState], 401: ErrorBody, 503: ErrorBody},
    },
)
async def list_schedules(engine: EngineDep) -> list[ScheduleState]:
    """What the scheduler last recorded for each job (empty until it has run)."""
    nc, names = getattr(engine, "nc", None), getattr(engine, "names", None)
    if nc is None or names is None:
        raise ApiError(503, "schedules are not readable from this engine", None)
    return await read_schedules(nc.jetstream(), names.namespace)
