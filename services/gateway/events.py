"""Inngest's Event API: `POST /e/{eventKey}` and `POST /events`, one event or a list."""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, post
from litestar.params import FromPath

from services.gateway.compat import BAD
from services.gateway.engine import EngineDep
from services.gateway.errors import ApiError
from services.gateway.schemas import (
    MAX_EVENTS,
    EventIn,
    EventsResponse,
    StartedRun,
    check_depth,
    decode,
)
from shared.workflow import EventEnvelope

RESERVED_PREFIX = "inngest/"


async def _accept(request: Request[Any, Any, Any], engine: EngineDep) -> EventsResponse:
    body: EventIn | list[EventIn] = decode(await request.body(), EventIn | list[EventIn])
    events = body if isinstance(body, list) else [body]
    if not events:
        raise ApiError(400, "no events in the request")
    if len(events) > MAX_EVENTS:
        raise ApiError(413, f"at most {MAX_EVENTS} events per request")
    now = int(time.time() * 1000)
    envelopes = []
    for i, event in enumerate(events):
        where = f"[{i}]." if isinstance(body, list) else ""
        if event.name.startswith(RESERVED_PREFIX):
            raise ApiError(422, "event names starting with 'inngest/' are reserved", f"{where}name")
        check_depth(event.data, f"{where}data")
        check_depth(event.user, f"{where}user")
        envelopes.append(
            EventEnvelope(
                name=event.name,
                data=event.data if event.data is not None else {},
                id=event.id or None,
                ts=event.ts or now,
                v=event.v,
                user=event.user,
            )
        )
    # Every event is validated before the first is published: a bad one refuses the lot.
    sent = await engine.send(envelopes)
    return EventsResponse(
        ids=[internal for internal, _ in sent],
        started=[
            StartedRun(event_id=internal, workflow=run.workflow, instance_id=run.instance_id)
            for internal, runs in sent
            for run in runs
        ],
    )


_DOC = {"body": EventIn | list[EventIn], "responses": {200: EventsResponse, **BAD}}


@post(
    "/e/{event_key:str}",
    status_code=200,
    opt={"summary": "Send events (Inngest's Event API; the path holds the event key)", **_DOC},
)
async def send_with_key(
    request: Request[Any, Any, Any], engine: EngineDep, event_key: FromPath[str]
) -> EventsResponse:
    """Store each event durably (2xx only once JetStream has it) and start the workflows
    that listen to its name. An event `id` makes the send idempotent for at least 24 h;
    an event no workflow listens to is stored and starts nothing."""
    del event_key  # checked by the auth middleware, if event keys are configured
    return await _accept(request, engine)


@post(
    "/events",
    status_code=200,
    opt={"summary": "Send events (Inngest's Event API, bearer token)", **_DOC},
)
async def send_events(request: Request[Any, Any, Any], engine: EngineDep) -> EventsResponse:
    """The same as `POST /e/{eventKey}`, for callers that authenticate with the header."""
    return await _accept(request, engine)
