"""The cross-service contract: each workflow's params and each event's data (msgspec).

Every Struct is frozen, keyword-only and camelCase on the wire (the web app's keys). The
gateway decodes `/trigger` and `/workflows/{wf}/instances` params with `PARAMS[workflow]`
and refuses what does not fit (400 naming the field); a worker decodes the same Struct
from an event's data, and dead-letters what does not decode. Schema evolution follows
msgspec's rules: a new field gets a default, a field's type never changes, unknown keys
are ignored (a newer web app may send more), a breaking change is a new event name.

```
workflow id         params                  started by
resume-generation   ResumeGenerationParams  resume/generation.requested
resume-parsing      ResumeParsingParams     resume/parsing.requested
profile-sync        ProfileSyncParams       profile/sync.requested
job-discovery       JobDiscoveryParams      job/discovery.requested (+ jobs/…)
daily-discovery     DailyDiscoveryParams    cron/daily-discovery
weekly-summary      WeeklySummaryParams     cron/weekly-summary, email/weekly-summary
email-unsubscribe   EmailUnsubscribeParams  email/unsubscribe.requested (gateway /unsubscribe)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta

# The database's ids are UUIDs (`shared.db.repository.as_uuid`); the web app sends their
# canonical text form. Anything else could only fail later, inside a step. (`\Z`, not `$`:
# `$` also matches before a trailing newline.)
UUID_PATTERN: Final = (
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z"
)
# GitHub's login rule: 1-39 characters, alphanumerics or single hyphens, not starting or
# ending with a hyphen (a hyphen must be followed by an alphanumeric).
GITHUB_LOGIN_PATTERN: Final = r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}\Z"

#: What each pattern means, so that an error can say so instead of quoting the regex.
PATTERN_MEANINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        UUID_PATTERN: "a UUID (8-4-4-4-12 hexadecimal digits)",
        GITHUB_LOGIN_PATTERN: (
            "a GitHub login (1-39 letters, digits or single hyphens, "
            "not starting or ending with a hyphen)"
        ),
    }
)

Uuid = Annotated[str, Meta(pattern=UUID_PATTERN, description="a UUID in its text form")]
GithubLogin = Annotated[str, Meta(pattern=GITHUB_LOGIN_PATTERN, description="a GitHub login")]
FileUrl = Annotated[str, Meta(min_length=1, max_length=2048)]
FileType = Literal["pdf", "docx"]
Keyword = Annotated[str, Meta(min_length=1, max_length=100)]


class Params(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every workflow's params: frozen, keyword-only, camelCase on the wire."""


class ResumeGenerationParams(Params, frozen=True, kw_only=True):
    """Tailor a resume to one job (SPEC §5 resume-generation)."""

    user_id: Uuid
    job_id: Uuid
    application_id: Uuid
    skip_usage_check: bool = False


class ResumeParsingParams(Params, frozen=True, kw_only=True):
    """Parse an uploaded resume file into the profile (SPEC §5 resume-parsing)."""

    user_id: Uuid
    resume_id: Uuid
    file_url: FileUrl
    file_type: FileType


class ProfileSyncParams(Params, frozen=True, kw_only=True):
    """Merge a GitHub profile into the user's profile (SPEC §5 profile-sync)."""

    user_id: Uuid
    github_handle: GithubLogin


class SearchCriteria(Params, frozen=True, kw_only=True, omit_defaults=True):
    """What to search for; each missing criterion falls back to the user's profile."""

    keywords: Annotated[list[Keyword], Meta(max_length=50)] | None = None
    location: Annotated[str, Meta(max_length=200)] | None = None
    remote: bool | None = None


class JobDiscoveryParams(Params, frozen=True, kw_only=True, omit_defaults=True):
    """Search the job boards for one user (SPEC §5 job-discovery)."""

    user_id: Uuid
    search_criteria: SearchCriteria | None = None


class DailyDiscoveryParams(Params, frozen=True, kw_only=True):
    """The 06:00 UTC cron: one job-discovery per active user. No params."""


class WeeklySummaryParams(Params, frozen=True, kw_only=True):
    """The Monday 09:00 UTC cron: one summary email per user and week. No params."""


EmailType = Annotated[str, Meta(pattern=r"^[a-z_]{1,40}\Z", description="an email type")]


class EmailUnsubscribeParams(Params, frozen=True, kw_only=True):
    """A verified one-click unsubscribe: turn off the preference of `email_type`."""

    user_id: Uuid
    email_type: EmailType


#: Workflow id → the Struct its params decode into.
PARAMS: Final[Mapping[str, type[Params]]] = MappingProxyType(
    {
        "resume-generation": ResumeGenerationParams,
        "resume-parsing": ResumeParsingParams,
        "profile-sync": ProfileSyncParams,
        "job-discovery": JobDiscoveryParams,
        "daily-discovery": DailyDiscoveryParams,
        "weekly-summary": WeeklySummaryParams,
        "email-unsubscribe": EmailUnsubscribeParams,
    }
)

__all__ = [
    "GITHUB_LOGIN_PATTERN",
    "PARAMS",
    "PATTERN_MEANINGS",
    "UUID_PATTERN",
    "DailyDiscoveryParams",
    "EmailUnsubscribeParams",
    "FileType",
    "JobDiscoveryParams",
    "Params",
    "ProfileSyncParams",
    "ResumeGenerationParams",
    "ResumeParsingParams",
    "SearchCriteria",
    "WeeklySummaryParams",
]
