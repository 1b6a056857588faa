"""The gateway's response bodies that its clients decode: defined once, imported by both.

`services.gateway` encodes these and `shared.client` decodes them, so the two can never
drift apart. camelCase on the wire, as the web app and the original Cloudflare worker use
them. Only msgspec here: the client must not pull in the engine or NATS.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import msgspec

#: An instance's status (Cloudflare's names); the engine's records use the same literal.
Status = Literal["queued", "running", "waiting", "paused", "errored", "terminated", "complete"]
STATUSES: tuple[str, ...] = get_args(Status)


class Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every body: frozen, keyword-only, camelCase on the wire."""


class ErrorDetail(Body, frozen=True, kw_only=True):
    """An instance's or a step's error: Cloudflare's `{name, message}`."""

    name: str
    message: str


class WorkflowStatus(Body, frozen=True, kw_only=True, omit_defaults=True):
    """Cloudflare's `instance.status()`: status, and output or error once there is one."""

    status: Status
    output: Any = None
    error: ErrorDetail | None = None
    # A quality gate kept an attempt it rejected (`needsReview`, only when true), and the
    # steps concerned; what the instance's model calls cost so far (tokens, `cost_usd`).
    needs_review: bool = False
    review_steps: list[str] | None = None
    usage: dict[str, Any] | None = None


class TriggerResponse(Body, frozen=True, kw_only=True):
    """`POST /trigger`'s answer: the instance (new, or the existing one of that id)."""

    success: bool
    instance_id: str
    status: WorkflowStatus


class StartedRun(Body, frozen=True, kw_only=True):
    """An instance an event starts (the same one again when the event is sent again)."""

    event_id: str
    workflow: str
    instance_id: str


class EventsResponse(Body, frozen=True, kw_only=True):
    """Inngest's answer (`ids`, `status`), plus the instances started: none when no
    workflow listens to the events (they are stored all the same)."""

    ids: list[str]
    status: int = 200
    started: list[StartedRun] = msgspec.field(default_factory=list)


class CacheInvalidated(Body, frozen=True, kw_only=True, omit_defaults=True):
    """`DELETE /cache/{workflow}[/{step}]`: how many cached step results were removed."""

    workflow: str
    removed: int
    step: str | None = None
    prefix: str | None = None


class RateLimitInfo(Body, frozen=True, kw_only=True, omit_defaults=True):
    """One shared rate limit now: tokens available of `capacity` (negative: reserved by
    waiting steps), refilling at `rate`; `blockedUntil` after an upstream's 429."""

    name: str
    rate: str
    capacity: float
    tokens: float
    blocked_until: datetime | None = None


class RateLimitList(Body, frozen=True, kw_only=True):
    """`GET /rate-limits`."""

    limits: list[RateLimitInfo]


__all__ = [
    "STATUSES",
    "Body",
    "CacheInvalidated",
    "ErrorDetail",
    "EventsResponse",
    "RateLimitInfo",
    "RateLimitList",
    "StartedRun",
    "Status",
    "TriggerResponse",
    "WorkflowStatus",
]
