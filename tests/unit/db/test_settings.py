"""Backend choice, error classification and record decoding, without a database."""

from __future__ import annotations

import uuid

import pytest

from shared.db import DatabaseSettings, EmailPreferences, Profile, backend_for, open_repository
from shared.db.postgres import statement_cache_size
from shared.db.records import Tier, from_row
from shared.db.repository import as_uuid, database_error, most_generous
from shared.errors import ConfigError, NonRetryableError, UpstreamError


async def test_database_url_is_preferred_over_supabase() -> None:
    """DATABASE_URL selects PostgreSQL even when Supabase's pair is also set."""
    both = DatabaseSettings(
        database_url="postgresql://x/db",
        supabase_url="https://p.supabase.co",
        supabase_service_role_key="k",
    )
    assert backend_for(both) == "postgres"
    rest = DatabaseSettings(supabase_url="https://p.supabase.co", supabase_service_role_key="k")
    assert backend_for(rest) == "supabase"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (DatabaseSettings(), "set DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"),
        (
            DatabaseSettings(supabase_url="https://p.supabase.co"),
            "SUPABASE_SERVICE_ROLE_KEY is not set",
        ),
        (DatabaseSettings(supabase_service_role_key="k"), "SUPABASE_URL is not set"),
    ],
)
async def test_missing_configuration_names_the_variable(
    settings: DatabaseSettings, message: str
) -> None:
    """Without a usable database configuration the error names what to set."""
    with pytest.raises(ConfigError, match=message):
        backend_for(settings)


async def test_open_repository_refuses_bad_settings_before_connecting() -> None:
    """A malformed pool size is a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="DATABASE_POOL_MAX"):
        async with open_repository(
            {"DATABASE_URL": "postgresql://x/db", "DATABASE_POOL_MAX": "many"}
        ):
            pass


async def test_pooler_connections_disable_the_statement_cache() -> None:
    """Transaction-mode poolers (port 6543, pgbouncer=true) get no prepared-statement cache."""
    assert statement_cache_size("postgresql://u:p@db.x.supabase.co:5432/postgres") == 100
    assert statement_cache_size("postgresql://u:p@aws-0.pooler.supabase.com:6543/postgres") == 0
    assert statement_cache_size("postgresql://u:p@host:5432/db?pgbouncer=true") == 0


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("23505", NonRetryableError),
        ("22P02", NonRetryableError),
        ("42703", NonRetryableError),
        ("PGRST204", NonRetryableError),
        ("PGRST000", UpstreamError),
        ("40001", UpstreamError),
        ("08006", UpstreamError),
        ("57P01", UpstreamError),
        ("404", NonRetryableError),
        ("429", UpstreamError),
        ("503", UpstreamError),
        (None, UpstreamError),
    ],
)
async def test_database_errors_split_into_permanent_and_retryable(
    code: str | None, kind: type[Exception]
) -> None:
    """Data and integrity errors are permanent; connection and contention errors retry."""
    assert type(database_error("boom", code)) is kind


async def test_ids_are_checked_once_at_the_edge() -> None:
    """Strings that are UUIDs pass; anything else is a non-retryable error naming the field."""
    value = uuid.uuid4()
    assert as_uuid(str(value)) == value
    assert as_uuid(value) is value
    with pytest.raises(NonRetryableError, match="resumeId"):
        as_uuid("../etc", "resumeId")


async def test_the_most_generous_active_tier_wins() -> None:
    """With several active subscriptions, unlimited beats any number, then the higher limit."""
    free = Tier(name="free", generation_limit_weekly=5)
    pro = Tier(name="pro", generation_limit_weekly=50)
    premium = Tier(name="premium", generation_limit_weekly=-1)
    assert most_generous([free, pro]) is pro
    assert most_generous([pro, premium, free]) is premium


async def test_rows_decode_tolerantly() -> None:
    """NULL lists read as [], odd preference values fall back to defaults, extra columns pass."""
    row = {
        "id": str(uuid.uuid4()),
        "user_id": str(uuid.uuid4()),
        "skills": None,
        "portfolio_urls": ["https://a", {"url": "https://b"}],
        "email_preferences": {"weeklySummary": False, "jobMatches": None, "resumeReady": "yes"},
        "a_column_the_web_app_added": 1,
        "created_at": "2026-01-05T00:00:00+00:00",
    }
    profile = from_row(Profile, row)
    assert profile.skills == []
    assert profile.portfolio_urls == ["https://a", '{"url":"https://b"}']
    assert profile.email_preferences == EmailPreferences(weekly_summary=False)
    assert profile.created_at is not None
    assert profile.created_at.utcoffset() is not None
