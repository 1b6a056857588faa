"""`howlerhire migrate`: versioned, idempotent, safe to run concurrently, SPEC §6 columns."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db.migrate import Migration, load_migrations, main, migrate
from shared.errors import ConfigError

# SPEC §6, column by column, with the types the web app and hosted schema use.
SPEC_COLUMNS = {
    "profiles": {
        "id": "uuid",
        "user_id": "uuid",
        "email": "text",
        "full_name": "text",
        "headline": "text",
        "summary": "text",
        "location": "text",
        "linkedin_url": "text",
        "github_handle": "text",
        "skills": "jsonb",
        "experience": "jsonb",
        "education": "jsonb",
        "preferred_roles": "jsonb",
        "preferred_locations": "jsonb",
        "remote_preference": "text",
        "min_salary": "integer",
        "max_salary": "integer",
        "portfolio_urls": "jsonb",
        "email_preferences": "jsonb",
        "onboarding_completed": "boolean",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
    "resumes": {
        "id": "uuid",
        "user_id": "uuid",
        "profile_id": "uuid",
        "name": "text",
        "is_default": "boolean",
        "original_file_url": "text",
        "original_file_name": "text",
        "original_file_type": "text",
        "parsed_content": "text",
        "structured_data": "jsonb",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
    "jobs": {
        "id": "uuid",
        "user_id": "uuid",
        "external_id": "text",
        "source": "text",
        "source_url": "text",
        "title": "text",
        "company": "text",
        "company_logo": "text",
        "location": "text",
        "is_remote": "boolean",
        "description": "text",
        "requirements": "jsonb",
        "salary_min": "integer",
        "salary_max": "integer",
        "salary_currency": "text",
        "employment_type": "text",
        "experience_level": "text",
        "match_score": "integer",
        "match_reasons": "jsonb",
        "ats_score": "integer",
        "matched_skills": "jsonb",
        "missing_required_skills": "jsonb",
        "missing_preferred_skills": "jsonb",
        "status": "text",
        "posted_at": "timestamp with time zone",
        "discovered_at": "timestamp with time zone",
        "applied_at": "timestamp with time zone",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
    "job_applications": {
        "id": "uuid",
        "user_id": "uuid",
        "job_id": "uuid",
        "resume_id": "uuid",
        "tailored_resume": "text",
        "cover_letter": "text",
        "generation_model": "text",
        "status": "text",
        "error_message": "text",
        "created_at": "timestamp with time zone",
        "updated_at": "timestamp with time zone",
    },
    "subscription_tiers": {
        "id": "uuid",
        "name": "text",
        "generation_limit_weekly": "integer",
        "job_discovery_limit_daily": "integer",
    },
    "user_subscriptions": {"user_id": "uuid", "tier_id": "uuid", "status": "text"},
    "email_send_history": {
        "user_id": "uuid",
        "email_type": "text",
        "recipient_email": "text",
        "subject": "text",
        "message_id": "text",
        "status": "text",
        "error_message": "text",
        "metadata": "jsonb",
        "created_at": "timestamp with time zone",
    },
}


async def _columns(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = $1",
        table,
    )
    return {row["column_name"]: row["data_type"] for row in rows}


async def test_migrations_create_the_spec_tables(database_url: str) -> None:
    """A fresh database gets every SPEC §6 table with its columns and types."""
    applied = await migrate(database_url)
    assert applied == [m.version for m in load_migrations()]
    conn = await asyncpg.connect(database_url)
    try:
        for table, expected in SPEC_COLUMNS.items():
            columns = await _columns(conn, table)
            assert {k: columns.get(k) for k in expected} == expected, table
        tiers = await conn.fetch(
            "SELECT name, generation_limit_weekly FROM subscription_tiers ORDER BY name"
        )
        assert [tuple(t) for t in tiers] == [("free", 5), ("premium", -1), ("pro", 50)]
        versions = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        assert {v["version"]: v["checksum"] for v in versions} == {
            m.version: m.checksum for m in load_migrations()
        }
    finally:
        await conn.close()


async def test_rerunning_migrations_is_a_no_op(database_url: str) -> None:
    """A second run applies nothing and leaves the seeded tiers as they were."""
    await migrate(database_url)
    assert await migrate(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM subscription_tiers") == 3
    finally:
        await conn.close()


async def test_concurrent_migrators_apply_each_version_once(database_url: str) -> None:
    """Services migrating at the same moment serialise; every version is applied once."""
    results = await asyncio.gather(*(migrate(database_url) for _ in range(4)))
    versions = [m.version for m in load_migrations()]
    assert sorted(v for r in results for v in r) == sorted(versions)
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(versions)
        assert await conn.fetchval("SELECT count(*) FROM subscription_tiers") == 3
    finally:
        await conn.close()


async def test_an_edited_migration_is_refused(database_url: str) -> None:
    """A migration whose text changed after it was applied stops the run."""
    shipped = load_migrations()
    await migrate(database_url, shipped)
    edited = [Migration(version=m.version, name=m.name, sql=m.sql + "\n-- edited") for m in shipped]
    with pytest.raises(ConfigError, match="changed after it was applied"):
        await migrate(database_url, edited)


async def test_a_failing_migration_leaves_no_trace(database_url: str) -> None:
    """A migration that fails is rolled back whole and not recorded; a fixed one then runs."""
    broken = Migration(
        version="9001",
        name="broken",
        sql="CREATE TABLE half_done (id int); SELECT no_such_function();",
    )
    with pytest.raises(asyncpg.UndefinedFunctionError):
        await migrate(database_url, [broken])
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == 0
    finally:
        await conn.close()
    fixed = Migration(version="9001", name="broken", sql="CREATE TABLE half_done (id int);")
    assert await migrate(database_url, [fixed]) == ["9001"]


async def test_migrations_apply_over_an_existing_web_app_schema(database_url: str) -> None:
    """Tables that already exist are kept; only the missing constraints and seeds are added."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "CREATE TABLE subscription_tiers (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
            "name text NOT NULL, generation_limit_weekly integer NOT NULL, "
            "job_discovery_limit_daily integer NOT NULL DEFAULT -1, "
            "created_at timestamptz NOT NULL DEFAULT now(), "
            "updated_at timestamptz NOT NULL DEFAULT now());"
            "INSERT INTO subscription_tiers (name, generation_limit_weekly) VALUES ('pro', 40)"
        )
        await migrate(database_url)
        tiers = await conn.fetch(
            "SELECT name, generation_limit_weekly FROM subscription_tiers ORDER BY name"
        )
        assert [tuple(t) for t in tiers] == [("free", 5), ("premium", -1), ("pro", 40)]
    finally:
        await conn.close()


async def test_migrate_command_reports_and_exits(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`howlerhire migrate` exits 0 and says what it did; no DATABASE_URL exits 2 naming it."""
    loop = asyncio.get_running_loop()
    environ = {"DATABASE_URL": database_url}
    assert await loop.run_in_executor(None, main, environ) == 0
    versions = ", ".join(m.version for m in load_migrations())
    assert f"applied {versions}" in capsys.readouterr().out
    assert await loop.run_in_executor(None, main, environ) == 0
    assert "up to date" in capsys.readouterr().out
    assert main({}) == 2
    assert "DATABASE_URL is not set" in capsys.readouterr().err
    assert main({"SUPABASE_URL": "https://x.supabase.co"}) == 2
    assert "needs no migration" in capsys.readouterr().err
    unreachable = database_url.rsplit("/", 1)[0] + "/no_such_database"
    assert await loop.run_in_executor(None, main, {"DATABASE_URL": unreachable}) == 1
    assert "no_such_database" in capsys.readouterr().err
