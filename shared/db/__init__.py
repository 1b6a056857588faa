"""Database access: the `Repository` interface and `open_repository`, which picks a backend.

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
from typing import Literal

import msgspec

from shared.config import load_settings
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
from shared.db.repository import Id, Repository
from shared.errors import ConfigError

__all__ = [
    "FREE_TIER",
    "UNLIMITED",
    "Application",
    "ApplicationStatus",
    "ClaimedEmail",
    "DatabaseSettings",
    "EmailClaim",
    "EmailOutcome",
    "EmailPreferences",
    "EmailSend",
    "GithubMerge",
    "Id",
    "Job",
    "JobScores",
    "NewJob",
    "Profile",
    "ProfileFill",
    "Recipient",
    "Repository",
    "Resume",
    "Tier",
    "TopMatch",
    "WeeklyStats",
    "backend_for",
    "open_repository",
]


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where the data lives. DATABASE_URL wins when both it and Supabase's pair are set."""

    database_url: str = ""
    supabase_url: str = ""
    supabase_service_role_key: str = ""
    # PostgreSQL connection pool bounds per process.
    database_pool_min: int = 1
    database_pool_max: int = 10
    # Seconds a PostgREST request may take (the Supabase backend).
    supabase_timeout: float = 30.0


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
