"""The I/O of the notify service: plain async functions over `NotifyDeps`, no engine imports.

A weekly summary goes out in chunks of at most 100 users. `prepare_chunk` lists the next
page of recipients, computes their figures with one aggregate query and claims one
email_send_history row per (user, weekly_summary, week) for the chunk's batch; the
figures are fixed in those rows. `send_chunk` sends exactly the rows of its batch as one
Resend batch call whose Idempotency-Key is the batch name, then records each outcome in
one statement. A retry therefore re-sends the identical request (Resend answers with
the first call's ids), and a user already sent for that week is never claimed again:
not by a second firing, a restarted workflow, nor a re-run after Resend has forgotten
its keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import msgspec

from services.notify.summary import (
    SUBJECT,
    SummaryFigures,
    TopMatchView,
    figures_from,
    render_html,
    render_text,
)
from shared.db import ClaimedEmail, EmailClaim, EmailOutcome, Repository
from shared.email import MAX_BATCH, EmailSender, OutgoingEmail
from shared.errors import NonRetryableError
from shared.unsubscribe import PREFERENCE_OF, UnsubscribeLinks
from shared.weeks import previous_week

log = logging.getLogger(__name__)

EMAIL_TYPE = "weekly_summary"


def _now() -> datetime:
    return datetime.now(UTC)


class Pacer:
    """Spaces this process's calls to at most `rate` per second (Resend's team limit).

    Process-local: replicas rely on Resend's 429 + Retry-After beyond it.
    """

    def __init__(self, rate: float) -> None:
        # 5 % below the rate: calls spaced exactly 1/rate apart meet Resend's one-second
        # window at its edge (network jitter), and each 429 then costs a whole second.
        self._interval = 1.05 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:
            now = time.monotonic()
            if self._next > now:
                await asyncio.sleep(self._next - now)
            self._next = max(now, self._next) + self._interval


@dataclass
class NotifyDeps:
    """What the notify steps use, built in `__main__` (or by hand in tests)."""

    repo: Repository
    mailer: EmailSender
    links: UnsubscribeLinks
    app_url: str = ""
    chunk_size: int = MAX_BATCH
    pacer: Pacer = field(default_factory=lambda: Pacer(2.0))
    clock: Callable[[], datetime] = field(default=_now)


class WeekPlan(msgspec.Struct, frozen=True, kw_only=True):
    label: str  # ISO week, e.g. 2026-W48: part of every key
    start: datetime
    end: datetime


class ChunkPlan(msgspec.Struct, frozen=True, kw_only=True):
    listed: int  # recipients on this page
    skipped: int  # no activity in the week
    already: int  # sent (or being sent) for this week by another batch
    claimed: int  # rows of this chunk's batch, to send
    cursor: str | None  # the last user id of the page
    done: bool  # the last page


class ChunkResult(msgspec.Struct, frozen=True, kw_only=True):
    sent: int
    failed: int
    failed_users: list[str] = []


async def plan_week(deps: NotifyDeps) -> WeekPlan:
    """The week to summarise: the last full Monday-to-Sunday week before now (UTC)."""
    window = previous_week(deps.clock())
    return WeekPlan(label=window.label, start=window.start, end=window.end)


def _week_label(week: WeekPlan) -> str:
    last = week.end - timedelta(days=1)
    return f"{week.start:%b} {week.start.day} – {last:%b} {last.day}, {last.year}"  # noqa: RUF001 - typographic dash in the email


async def prepare_chunk(
    deps: NotifyDeps, week: WeekPlan, batch: str, after: str | None
) -> ChunkPlan:
    """List the next page of recipients, count their week in one query, claim the active."""
    recipients = await deps.repo.list_weekly_summary_recipients(after=after, limit=deps.chunk_size)
    done = len(recipients) < deps.chunk_size
    cursor = str(recipients[-1].user_id) if recipients else after
    if not recipients:
        return ChunkPlan(listed=0, skipped=0, already=0, claimed=0, cursor=cursor, done=True)
    stats = await deps.repo.weekly_stats_for([r.user_id for r in recipients], week.start, week.end)
    label = _week_label(week)
    claims = []
    skipped = 0
    for recipient in recipients:
        figures = stats[recipient.user_id]
        if not figures.has_activity:
            skipped += 1
            continue
        top = figures.top_match
        summary = SummaryFigures(
            name=recipient.full_name,
            jobs_discovered=figures.jobs_discovered,
            applications_ready=figures.applications_ready,
            jobs_applied=figures.jobs_applied,
            week_label=label,
            top_match=None
            if top is None
            else TopMatchView(
                title=top.title,
                company=top.company,
                match_score=top.match_score,
                source_url=top.source_url,
            ),
        )
        claims.append(
            EmailClaim(
                user_id=recipient.user_id,
                recipient_email=recipient.email,
                subject=SUBJECT,
                metadata={
                    "idempotency_key": f"weekly-summary:{recipient.user_id}:{week.label}",
                    "summary": msgspec.to_builtins(summary),
                },
            )
        )
    rows = await deps.repo.claim_weekly_emails(EMAIL_TYPE, week.label, batch, claims)
    claimed = len(rows)
    return ChunkPlan(
        listed=len(recipients),
        skipped=skipped,
        already=len(claims) - claimed,
        claimed=claimed,
        cursor=cursor,
        done=done,
    )


def _email(deps: NotifyDeps, week: WeekPlan, row: ClaimedEmail) -> OutgoingEmail:
    figures = figures_from(row.metadata)
    base = deps.app_url.rstrip("/")
    dashboard, preferences = f"{base}/dashboard", f"{base}/settings/notifications"
    # The link's expiry follows from the week, so a re-render is the same email.
    unsub = deps.links.url(row.user_id, EMAIL_TYPE, week.end + deps.links.ttl)
    return OutgoingEmail(
        to=row.recipient_email,
        subject=row.subject or SUBJECT,
        html=render_html(figures, dashboard, preferences, unsub),
        text=render_text(figures, dashboard, preferences, unsub),
        idempotency_key=str(row.metadata.get("idempotency_key") or row.user_id),
        tags={"category": EMAIL_TYPE},
        user_id=str(row.user_id),
        headers={
            # RFC 8058 one-click unsubscribe, which Gmail and Yahoo require of bulk senders.
            "List-Unsubscribe": f"<{unsub}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
    )


def _result(rows: list[ClaimedEmail]) -> ChunkResult:
    failed = [str(r.user_id) for r in rows if r.status == "failed"]
    return ChunkResult(
        sent=sum(r.status == "sent" for r in rows), failed=len(failed), failed_users=failed
    )


async def send_chunk(deps: NotifyDeps, week: WeekPlan, batch: str) -> ChunkResult:
    """Send the batch's queued rows as one Resend batch call and record every outcome."""
    rows = await deps.repo.batch_emails(batch)
    queued = [r for r in rows if r.status == "queued"]
    if not queued:
        return _result(rows)  # finished by an earlier attempt whose result was not recorded
    if len(queued) != len(rows):
        # Rows are finished together in one statement: a mix means someone else touched
        # them. Re-sending a subset under the same key would be a different request.
        raise NonRetryableError(f"batch {batch} is partly finished; not re-sending it")
    emails = [_email(deps, week, row) for row in queued]
    await deps.pacer.wait()
    outcomes = await deps.mailer.send_batch(emails, batch)
    await deps.repo.finish_weekly_emails(
        EMAIL_TYPE,
        week.label,
        batch,
        [
            EmailOutcome(user_id=row.user_id, message_id=o.message_id, error=o.error)
            for row, o in zip(queued, outcomes, strict=True)
        ],
    )
    for row, outcome in zip(queued, outcomes, strict=True):
        if outcome.error:
            log.warning("weekly summary to user %s refused: %s", row.user_id, outcome.error)
    return _result(await deps.repo.batch_emails(batch))


async def fail_chunk(deps: NotifyDeps, week: WeekPlan, batch: str, error: str) -> ChunkResult:
    """The batch could not be sent at all: its rows become 'failed' (a re-run retries them)."""
    rows = await deps.repo.batch_emails(batch)
    await deps.repo.finish_weekly_emails(
        EMAIL_TYPE,
        week.label,
        batch,
        [EmailOutcome(user_id=r.user_id, error=error[:500]) for r in rows],
    )
    return _result(await deps.repo.batch_emails(batch))


async def unsubscribe(deps: NotifyDeps, user_id: str, email_type: str) -> bool:
    """Turn off the preference an unsubscribe link names (the gateway verified the link)."""
    preference = PREFERENCE_OF.get(email_type)
    if preference is None:
        raise NonRetryableError(f"no preference for email type {email_type!r}")
    changed = await deps.repo.set_email_preference(UUID(user_id), preference, False)
    log.info("user %s unsubscribed from %s (profile found: %s)", user_id, email_type, changed)
    return changed
