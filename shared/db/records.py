"""Typed rows and arguments of the repository: what the workflows read and write.

Column names follow SPEC §6 (the web app and the hosted Supabase schema share them).
Rows come in as plain mappings from either backend (asyncpg records or PostgREST JSON)
and are turned into Structs by `from_row`, which also maps SQL NULL in list-valued
columns to an empty list, so callers never have to tell "null" from "[]".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal, TypeVar
from uuid import UUID

import msgspec

ApplicationStatus = Literal["generating", "ready", "failed", "limit_exceeded"]
RemotePreference = Literal["remote", "hybrid", "onsite"]

#: A generation limit of -1 means "unlimited".
UNLIMITED: Final = -1


class Tier(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription tier and its limits (-1 = unlimited)."""

    name: str
    generation_limit_weekly: int
    job_discovery_limit_daily: int = UNLIMITED

    @property
    def unlimited_generations(self) -> bool:
        return self.generation_limit_weekly < 0


#: The tier of a user without an active subscription (SPEC §5: free = 5 a week).
FREE_TIER: Final = Tier(name="free", generation_limit_weekly=5)


class EmailPreferences(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """`profiles.email_preferences`; a missing or null key takes the default below."""

    job_matches: bool = True
    resume_ready: bool = True
    weekly_summary: bool = True
    application_updates: bool = True
    marketing_emails: bool = False


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    email: str | None = None
    full_name: str | None = None
    headline: str | None = None
    summary: str | None = None
    location: str | None = None
    linkedin_url: str | None = None
    github_handle: str | None = None
    skills: list[str] = []
    # Entries are documents owned by the web app's editor; kept as JSON objects.
    experience: list[dict[str, Any]] = []
    education: list[dict[str, Any]] = []
    preferred_roles: list[str] = []
    preferred_locations: list[str] = []
    remote_preference: str | None = None
    min_salary: int | None = None
    max_salary: int | None = None
    portfolio_urls: list[str] = []
    email_preferences: EmailPreferences = EmailPreferences()
    onboarding_completed: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Resume(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    profile_id: UUID | None = None
    name: str | None = None
    is_default: bool = False
    original_file_url: str | None = None
    original_file_name: str | None = None
    original_file_type: str | None = None
    parsed_content: str | None = None
    structured_data: Any = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    title: str
    external_id: str | None = None
    source: str | None = None
    source_url: str | None = None
    company: str | None = None
    company_logo: str | None = None
    location: str | None = None
    is_remote: bool | None = None
    description: str | None = None
    requirements: Any = None
    salary_min: int | None = None
    salary_max: int | None = None
    salary_currency: str | None = None
    employment_type: str | None = None
    experience_level: str | None = None
    match_score: int | None = None
    match_reasons: Any = None
    ats_score: int | None = None
    matched_skills: list[str] = []
    missing_required_skills: list[str] = []
    missing_preferred_skills: list[str] = []
    status: str = "new"
    posted_at: datetime | None = None
    discovered_at: datetime | None = None
    applied_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Application(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    user_id: UUID
    job_id: UUID
    resume_id: UUID | None = None
    tailored_resume: str | None = None
    cover_letter: str | None = None
    generation_model: str | None = None
    status: str = "generating"
    error_message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class NewJob(msgspec.Struct, frozen=True, kw_only=True):
    """A discovered job to insert; (user_id, source_url) identifies it."""

    source: str
    source_url: str
    title: str
    company: str | None = None
    external_id: str | None = None
    company_logo: str | None = None
    location: str | None = None
    is_remote: bool = False
    description: str | None = None
    requirements: Any = None
    salary_min: int | None = None
    salary_max: int | None = None
    salary_currency: str | None = None
    employment_type: str | None = None
    experience_level: str | None = None
    match_score: int | None = None
    match_reasons: Any = None
    matched_skills: list[str] = []
    posted_at: datetime | None = None


class JobKey(msgspec.Struct, frozen=True, kw_only=True):
    """What identifies a saved job for de-duplication: its URL, title and company."""

    source_url: str | None
    title: str
    company: str | None = None


class JobScores(msgspec.Struct, frozen=True, kw_only=True):
    """Scores of a generated resume against its job (whole percentages)."""

    match_score: int
    ats_score: int
    matched_skills: list[str] = []
    missing_required_skills: list[str] = []
    missing_preferred_skills: list[str] = []


class ProfileFill(msgspec.Struct, frozen=True, kw_only=True):
    """Values from a parsed resume; each lands only where the profile field is empty."""

    full_name: str | None = None
    summary: str | None = None
    skills: list[str] = []
    experience: list[Any] = []
    education: list[Any] = []


class GithubMerge(msgspec.Struct, frozen=True, kw_only=True):
    """What profile-sync adds: skills merged in, text fields filled if empty, a blog URL."""

    skills: list[str] = []
    full_name: str | None = None
    summary: str | None = None
    location: str | None = None
    blog_url: str | None = None


class TopMatch(msgspec.Struct, frozen=True, kw_only=True):
    job_id: UUID
    title: str
    company: str | None
    match_score: int
    source_url: str | None = None


class WeeklyStats(msgspec.Struct, frozen=True, kw_only=True):
    """One user's activity in a [start, end) window."""

    jobs_discovered: int
    applications_ready: int
    jobs_applied: int
    top_match: TopMatch | None = None

    @property
    def has_activity(self) -> bool:
        return bool(self.jobs_discovered or self.applications_ready or self.jobs_applied)


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    """A user who gets the weekly summary."""

    user_id: UUID
    email: str
    full_name: str | None = None


class EmailClaim(msgspec.Struct, frozen=True, kw_only=True):
    """A weekly email about to be sent to one user: the row claimed in email_send_history
    (status 'queued') before the send, with what the email says fixed in `metadata`."""

    user_id: UUID
    recipient_email: str
    subject: str
    metadata: dict[str, Any] = {}


class ClaimedEmail(msgspec.Struct, frozen=True, kw_only=True):
    """A row of one batch as stored: its status and, once sent, the provider's id."""

    user_id: UUID
    recipient_email: str
    subject: str | None
    status: str  # 'queued', 'sent' or 'failed'
    metadata: dict[str, Any] = {}
    message_id: str | None = None
    error_message: str | None = None


class EmailOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """How one claimed email went: a message id (sent) or an error (failed)."""

    user_id: UUID
    message_id: str | None = None
    error: str | None = None


class EmailSend(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `email_send_history`; the idempotency key is kept in `metadata`."""

    idempotency_key: str
    user_id: UUID | None
    email_type: str
    recipient_email: str
    subject: str | None = None
    message_id: str | None = None
    status: Literal["sent", "failed"] = "sent"
    error_message: str | None = None
    metadata: dict[str, Any] = {}


# Columns whose NULL reads as an empty list.
_LIST_COLUMNS: Final = frozenset(
    {
        "skills",
        "experience",
        "education",
        "preferred_roles",
        "preferred_locations",
        "portfolio_urls",
        "matched_skills",
        "missing_required_skills",
        "missing_preferred_skills",
    }
)

R = TypeVar("R", bound=msgspec.Struct)


def _text_items(values: list[Any]) -> list[str]:
    # Skill-like lists are lists of strings; anything else the web app stored is kept
    # visible as its JSON text rather than failing the whole read.
    return [v if isinstance(v, str) else msgspec.json.encode(v).decode() for v in values]


def from_row(cls: type[R], row: Mapping[str, Any]) -> R:
    """Build a record Struct from a database row or a PostgREST JSON object."""
    values = dict(row)
    for key in _LIST_COLUMNS & values.keys():
        value = values[key]
        if value is None:
            values[key] = []
        elif key not in ("experience", "education") and isinstance(value, list):
            values[key] = _text_items(value)
    if "email_preferences" in values:
        prefs = values["email_preferences"]
        values["email_preferences"] = (
            {k: v for k, v in prefs.items() if isinstance(v, bool)}
            if isinstance(prefs, dict)
            else {}
        )
    return msgspec.convert(values, cls, strict=False)


def email_preferences_from(value: Any) -> EmailPreferences:
    """`profiles.email_preferences` as stored (any JSON, or NULL) as preferences."""
    prefs = value if isinstance(value, dict) else {}
    return msgspec.convert(
        {k: v for k, v in prefs.items() if isinstance(v, bool)}, EmailPreferences
    )


def to_json(value: Any) -> Any:
    """Plain JSON builtins for a jsonb column (Structs, UUIDs and datetimes included)."""
    return msgspec.to_builtins(value)
