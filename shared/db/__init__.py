"""Database access: the `Repository` interface (split by aggregate: `Profiles`, `Resumes`,
`Jobs`, `Applications`, `EmailLog`, `Usage`) and `open_repository`, which picks a backend.

```
open_repository(environ)
├─ DATABASE_URL set                       → PostgresRepository (asyncpg pool)
├─ SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY → SupabaseRepository (PostgREST)
└─ neither                                → ConfigError naming the variables
```

Usage, in a service's `__main__`:

    async with open_repository(os.environ) as repo:
        deps = ResumeDeps(repo=repo, ...)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Literal

from msgspec import Meta

from shared.config import Settings, load_settings
from shared.db.records import (
    FREE_TIER,
    UNLIMITED,
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
    TopMatch,
    WeeklyStats,
)
from shared.db.repository import (
    Applications,
    EmailLog,
    Id,
    Jobs,
    Profiles,
    Repository,
    Resumes,
    Usage,
)
from shared.errors import ConfigError

__all__ = [
    "FREE_TIER",
    "UNLIMITED",
    "Application",
    "ApplicationStatus",
    "Applications",
    "ClaimedEmail",
    "DatabaseSettings",
    "EmailClaim",
    "EmailLog",
    "EmailOutcome",
    "EmailPreferences",
    "EmailSend",
    "GithubMerge",
    "Id",
    "Job",
    "JobKey",
    "JobScores",
    "Jobs",
    "NewJob",
    "Profile",
    "ProfileFill",
    "Profiles",
    "Recipient",
    "Repository",
    "Resume",
    "Resumes",
    "Tier",
    "TopMatch",
    "Usage",
    "WeeklyStats",
    "backend_for",
    "open_repository",
]


class DatabaseSettings(Settings, frozen=True, kw_only=True):
    """Where the data lives. DATABASE_URL wins when both it and Supabase's pair are set.

    DATABASE_URL holds the database password and the service role key is a secret: the
    settings base keeps both out of `repr`.
    """

    database_url: str = ""
    supabase_url: str = ""
    supabase_service_role_key: str = ""
    # PostgreSQL connection pool bounds per process.
    database_pool_min: Annotated[int, Meta(ge=0)] = 1
    database_pool_max: Annotated[int, Meta(ge=1)] = 10
    # Seconds a PostgREST request may take (the Supabase backend).
    supabase_timeout: Annotated[float, Meta(gt=0)] = 30.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.database_pool_min > self.database_pool_max:
            raise ConfigError("DATABASE_POOL_MIN must not be above DATABASE_POOL_MAX")


def backend_for(settings: DatabaseSettings) -> Literal["postgres", "supabase"]:
    """The backend these settings select; ConfigError naming what is missing if none."""
    if settings.database_url.strip():
        return "postgres"
    url, key = settings.supabase_url.strip(), settings.supabase_service_role_key.strip()
    if url and key:
        return "supabase"
    if url:
        raise ConfigError("SUPABASE_SERVICE_ROLE_KEY is not set; SUPABASE_URL needs it")
    if key:
        raise ConfigError("SUPABASE_URL is not set; SUPABASE_SERVICE_ROLE_KEY needs it")
    raise ConfigError(
        "no database configured: set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"
    )


@asynccontextmanager
async def open_repository(environ: Mapping[str, str]) -> AsyncIterator[Repository]:
    """Open the repository the environment configures, and close it on exit."""
    settings = load_settings(DatabaseSettings, environ)
    repo: Repository
    if backend_for(settings) == "postgres":
        from shared.db.postgres import PostgresRepository

        repo = await PostgresRepository.open(
            settings.database_url,
            min_size=settings.database_pool_min,
            max_size=settings.database_pool_max,
        )
    else:
        from shared.db.supabase import SupabaseRepository

        repo = await SupabaseRepository.open(
            settings.supabase_url,
            settings.supabase_service_role_key,
            request_timeout=settings.supabase_timeout,
        )
    try:
        yield repo
    finally:
        await repo.aclose()
