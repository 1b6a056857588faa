"""The repository interface: every database operation the workflows perform, by name.

```
Repository                 everything (what `open_repository` yields)
├─ Profiles                profiles: get, email preferences, fill/merge, user listings
├─ Resumes                 resumes: the default one, parsed content
├─ Jobs                    jobs: get one, insert discovered ones once
├─ Applications            job_applications: get, set status, save a generated resume
├─ EmailLog                email_send_history: already sent?, record a send, weekly claims
└─ Usage                   tiers and activity counts (weekly limit, weekly summary)
```

Workflows call these methods and never write SQL or PostgREST queries inline. Two
backends implement it (`PostgresRepository`, `SupabaseRepository`); one contract test
suite holds them to the same behaviour. Every write is safe to repeat (a redelivered
step runs it again) and safe against a concurrent writer; each method's docstring says
how. Ids may be given as `UUID` or as their string form (workflow params are JSON).
Times are aware datetimes; windows are half-open [start, end) in UTC (`shared.weeks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from shared.db.records import (
    Application,
    ApplicationStatus,
    ClaimedEmail,
    EmailClaim,
    EmailOutcome,
    EmailPreferences,
    EmailSend,
    GithubMerge,
    Job,
    JobKey,
    JobScores,
    NewJob,
    Profile,
    ProfileFill,
    Recipient,
    Resume,
    Tier,
    WeeklyStats,
    to_json,
)
from shared.errors import AppError, NonRetryableError, UpstreamError

Id = UUID | str

#: Page size of the user listings when the caller does not choose one.
DEFAULT_PAGE = 500


def as_uuid(value: Id, what: str = "id") -> UUID:
    """`value` as a UUID; a malformed id can never succeed, so it fails without retries."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise NonRetryableError(f"{what} is not a UUID: {str(value)[:64]!r}") from None


# SQLSTATE classes that no retry can fix: data exceptions (22), integrity violations
# (23), syntax errors, undefined objects and missing privileges (42). PostgREST's own
# codes are permanent except PGRST0xx, which say it could not reach the database. Bare
# HTTP statuses (an error body that was not PostgREST's) are permanent for 4xx other
# than 408 and 429.
_PERMANENT_SQLSTATE_CLASSES = ("22", "23", "42")


def _permanent(code: str) -> bool:
    if code.startswith("PGRST"):
        return not code.startswith("PGRST0")
    if len(code) == 3 and code.isdigit():
        return code.startswith("4") and code not in ("408", "429")
    return len(code) == 5 and code.startswith(_PERMANENT_SQLSTATE_CLASSES)


def database_error(message: str, code: str | None) -> AppError:
    """The error a backend raises for a failed database call with this SQLSTATE/PGRST code.

    Permanent failures are `NonRetryableError` (retrying only repeats them); anything
    else, connection trouble included, is `UpstreamError`, which the engine retries.
    """
    text = f"database error {code}: {message}" if code else f"database error: {message}"
    if code and _permanent(code):
        return NonRetryableError(text)
    return UpstreamError(text)


def most_generous(tiers: Iterable[Tier]) -> Tier:
    """The tier to apply when a user has several active subscriptions: the highest limit."""
    return max(
        tiers,
        key=lambda t: (t.unlimited_generations, t.generation_limit_weekly, t.name),
    )


def new_job_rows(jobs: Sequence[NewJob]) -> list[dict[str, Any]]:
    """Jobs as JSON rows, one per source_url (the first wins), all with the same keys."""
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    for job in jobs:
        if job.source_url in seen:
            continue
        seen.add(job.source_url)
        rows.append(to_json(job))
    return rows


class Profiles(Protocol):
    """The `profiles` rows: read, fill empty fields, merge GitHub, and list users."""

    async def get_profile(self, user_id: Id) -> Profile | None: ...

    async def get_email_preferences(self, user_id: Id) -> EmailPreferences:
        """The user's email preferences; the defaults if the user has no profile."""
        ...

    async def fill_empty_profile_fields(self, user_id: Id, fill: ProfileFill) -> Profile | None:
        """Write each given value only where the profile's field is empty (NULL, blank, []).

        Atomic against a concurrent edit: a field the user filled meanwhile is never
        overwritten. Returns the profile as written, None if the user has none.
        """
        ...

    async def merge_github_profile(self, user_id: Id, merge: GithubMerge) -> Profile | None:
        """Add skills not yet present (case-insensitive), fill empty full_name, summary and
        location, append the blog URL to portfolio_urls once. Atomic as above."""
        ...

    async def list_active_users(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[UUID]:
        """User ids whose profile has preferred roles or skills, ascending; page with
        `after` = the last id of the previous page."""
        ...

    async def list_weekly_summary_recipients(
        self, *, after: Id | None = None, limit: int = DEFAULT_PAGE
    ) -> list[Recipient]:
        """Profiles with an email whose `email_preferences.weeklySummary` is not false,
        ascending by user id; page with `after`."""
        ...

    async def set_email_preference(self, user_id: Id, key: str, value: bool) -> bool:
        """Set one `email_preferences` flag (e.g. weeklySummary=false), keeping the others;
        False if the user has no profile."""
        ...


class Resumes(Protocol):
    """The `resumes` rows: the default one, and what parsing found in one."""

    async def get_default_resume(self, user_id: Id) -> Resume | None:
        """The user's resume marked `is_default` (the most recently updated, if several)."""
        ...

    async def save_parsed_resume(
        self, user_id: Id, resume_id: Id, *, parsed_content: str, structured_data: object
    ) -> bool:
        """Store `parsed_content` and `structured_data`; False if not that user's resume."""
        ...


class Jobs(Protocol):
    """The `jobs` rows: one job of a user, and discovered jobs inserted once."""

    async def get_job(self, user_id: Id, job_id: Id) -> Job | None:
        """The job with that id if it belongs to that user; None otherwise (no leak)."""
        ...

    async def insert_new_jobs(self, user_id: Id, jobs: Sequence[NewJob]) -> int:
        """Insert jobs with status 'new', skipping any (user_id, source_url) that exists,
        also under concurrent runs. Returns how many rows were inserted."""
        ...

    async def recent_job_keys(self, user_id: Id, since: datetime) -> list[JobKey]:
        """URL, title and company of the user's jobs discovered at or after `since`
        (what a new discovery run must not save again under another URL)."""
        ...


class Applications(Protocol):
    """The `job_applications` rows: read, set their status, store a generated resume."""

    async def get_application(self, user_id: Id, application_id: Id) -> Application | None:
        """The application with that id if it belongs to that user."""
        ...

    async def set_application_status(
        self,
        user_id: Id,
        application_id: Id,
        status: ApplicationStatus,
        error_message: str | None = None,
    ) -> bool:
        """Set status and error_message; False if no such application of that user."""
        ...

    async def save_application(
        self,
        user_id: Id,
        application_id: Id,
        job_id: Id,
        *,
        tailored_resume: str,
        generation_model: str,
        scores: JobScores,
    ) -> bool:
        """Store the generated resume (status 'ready') and the job's scores.

        Plain assignments of given values, so saving the same result twice leaves the
        same rows. False if the application or job is not that user's.
        """
        ...


class EmailLog(Protocol):
    """`email_send_history`: what was sent, recorded once per idempotency key."""

    async def email_already_sent(self, idempotency_key: str) -> bool:
        """Whether a 'sent' email with this idempotency key is recorded."""
        ...

    async def record_email_send(self, send: EmailSend) -> bool:
        """Record a send in email_send_history. For status 'sent' at most one row per
        idempotency key: False (and nothing written) if it was already recorded."""
        ...

    async def claim_weekly_emails(
        self, email_type: str, week: str, batch: str, claims: Sequence[EmailClaim]
    ) -> list[ClaimedEmail]:
        """Claim one row per (user, `email_type`, `week`) for `batch`: a user with no row
        yet, or whose earlier try failed, is claimed ('queued'); one already sent or queued
        by another batch is not. Returns every row of `batch`, by user id (so a repeated
        claim returns the same rows)."""
        ...

    async def batch_emails(self, batch: str) -> list[ClaimedEmail]:
        """The rows of one batch, by user id."""
        ...

    async def finish_weekly_emails(
        self, email_type: str, week: str, batch: str, outcomes: Sequence[EmailOutcome]
    ) -> int:
        """Mark `batch`'s queued rows 'sent' (with the message id) or 'failed' (with the
        error), in one statement; rows already finished are left alone. Returns how many
        changed."""
        ...


class Usage(Protocol):
    """Tiers and activity counts: the weekly limit's inputs and the weekly summary's figures."""

    async def get_tier(self, user_id: Id) -> Tier:
        """The tier of the user's active subscription; `FREE_TIER` if there is none."""
        ...

    async def count_ready_applications(self, user_id: Id, since: datetime) -> int:
        """The user's job_applications with status 'ready' created at or after `since`."""
        ...

    async def weekly_stats(self, user_id: Id, start: datetime, end: datetime) -> WeeklyStats:
        """Jobs discovered, applications made ready, jobs applied and the best-matching
        job discovered, all within [start, end)."""
        ...

    async def weekly_stats_for(
        self, user_ids: Sequence[Id], start: datetime, end: datetime
    ) -> dict[UUID, WeeklyStats]:
        """`weekly_stats` of many users in one aggregate query; every id given is a key."""
        ...


class Repository(Profiles, Resumes, Jobs, Applications, EmailLog, Usage, Protocol):
    """Every domain operation on the HowlerHire tables (SPEC §5, §6), both backends'.

    A step's deps should name the aggregates it uses (`Jobs`, `Applications`, …) rather
    than this whole interface; it stays for wiring (`open_repository`) and old callers.
    """

    async def aclose(self) -> None:
        """Release connections. The factory's context manager calls it."""
        ...
