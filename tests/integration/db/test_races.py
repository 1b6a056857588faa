"""Concurrency: racing workflows and user edits leave the rows the contract promises.

Races are staged, not timed: a held row lock (PostgreSQL) or a write hook in the
PostgREST stand-in puts the competing write exactly between a merge's read and its
write, so these tests do not depend on scheduling luck.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg
import pytest

from shared.db import EmailSend, GithubMerge, NewJob, ProfileFill
from shared.db.postgres import PostgresRepository
from shared.db.supabase import SupabaseRepository
from tests.integration.db.conftest import SERVICE_KEY, Harness, needs_sql
from tests.support.postgrest import FakePostgrest


def _jobs(*numbers: int) -> list[NewJob]:
    return [
        NewJob(source="remoteok", source_url=f"https://jobs.example/{n}", title=f"Job {n}")
        for n in numbers
    ]


async def test_racing_discovery_runs_leave_one_row_per_url(backend: Harness) -> None:
    """Concurrent inserts of overlapping jobs insert each URL once, and count it once."""
    user = await backend.seed.new_user()
    batches = [_jobs(*range(30)), _jobs(*range(10, 40)), _jobs(*range(0, 40, 2))] * 2
    inserted = await asyncio.gather(*(backend.repo.insert_new_jobs(user, b) for b in batches))
    rows = await backend.seed.rows("jobs", user_id=user)
    assert len(rows) == 40
    assert len({row["source_url"] for row in rows}) == 40
    assert sum(inserted) == 40


async def test_racing_summary_sends_record_one_sent_row(backend: Harness) -> None:
    """Concurrent records of the same sent email keep exactly one row and one True."""
    user = await backend.seed.new_user()
    send = EmailSend(
        idempotency_key=f"weekly:{user}:2026-W02",
        user_id=user,
        email_type="weekly_summary",
        recipient_email="ada@example.com",
    )
    results = await asyncio.gather(*(backend.repo.record_email_send(send) for _ in range(6)))
    assert sorted(results) == [False] * 5 + [True]
    assert len(await backend.seed.rows("email_send_history", user_id=user)) == 1


async def test_concurrent_merges_lose_no_skill(backend: Harness) -> None:
    """Merges racing each other all land: every skill ends up in the profile once."""
    user = await backend.seed.new_user()
    await backend.seed.insert("profiles", user_id=user, skills=["Python"])
    merges = [GithubMerge(skills=[f"Skill{i}", "python"]) for i in range(5)]
    await asyncio.gather(*(backend.repo.merge_github_profile(user, m) for m in merges))
    profile = await backend.repo.get_profile(user)
    assert profile is not None
    assert profile.skills[0] == "Python"
    assert sorted(profile.skills[1:]) == [f"Skill{i}" for i in range(5)]


async def _wait_until_blocked(conn: asyncpg.Connection, blocker_pid: int) -> None:
    # Poll until some backend waits on a lock held by `blocker_pid`; no fixed sleeps.
    for _ in range(2000):
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))",
            blocker_pid,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the merge never waited for the user's edit")


async def test_merge_racing_a_user_edit_keeps_the_edit_postgres(migrated_url: str) -> None:
    """A merge that hits a row mid-edit re-reads it after the edit commits and keeps it."""
    repo = await PostgresRepository.open(migrated_url)
    user_conn = await asyncpg.connect(migrated_url)
    observer = await asyncpg.connect(migrated_url)
    try:
        user = uuid.uuid4()
        await user_conn.execute(
            "INSERT INTO profiles (user_id, skills) VALUES ($1, '[\"Go\"]')", user
        )
        edit = user_conn.transaction()
        await edit.start()
        # The user's edit: name, summary and skills, uncommitted and holding the row lock.
        await user_conn.execute(
            "UPDATE profiles SET full_name = 'Typed By User', summary = 'Mine', "
            'skills = \'["Go", "Elixir"]\' WHERE user_id = $1',
            user,
        )
        fill = asyncio.create_task(
            repo.fill_empty_profile_fields(
                user, ProfileFill(full_name="From Resume", summary="Parsed", skills=["C"])
            )
        )
        await _wait_until_blocked(observer, user_conn.get_server_pid())
        await edit.commit()
        profile = await fill
        assert profile is not None
        assert (profile.full_name, profile.summary) == ("Typed By User", "Mine")
        assert profile.skills == ["Go", "Elixir"]

        # The same for profile-sync: its skills are added to the user's new list.
        edit = user_conn.transaction()
        await edit.start()
        await user_conn.execute(
            "UPDATE profiles SET location = 'Lisbon', skills = skills || '[\"Zig\"]' "
            "WHERE user_id = $1",
            user,
        )
        merge = asyncio.create_task(
            repo.merge_github_profile(user, GithubMerge(skills=["zig", "Rust"], location="Porto"))
        )
        await _wait_until_blocked(observer, user_conn.get_server_pid())
        await edit.commit()
        merged = await merge
        assert merged is not None
        assert merged.location == "Lisbon"
        assert merged.skills == ["Go", "Elixir", "Zig", "Rust"]
    finally:
        await observer.close()
        await user_conn.close()
        await repo.aclose()


async def test_merge_racing_a_user_edit_keeps_the_edit_over_rest(migrated_url: str) -> None:
    """Over REST an edit between the merge's read and write makes it re-read, not overwrite."""
    user = uuid.uuid4()

    async def user_edits(method: str, table: str, pool: asyncpg.Pool) -> None:
        assert (method, table) == ("PATCH", "profiles")
        await pool.execute(
            "UPDATE profiles SET full_name = 'Typed By User', skills = '[\"Go\", \"Elixir\"]' "
            "WHERE user_id = $1",
            user,
        )

    async with FakePostgrest(migrated_url, SERVICE_KEY) as fake:
        await fake.pool.execute(
            "INSERT INTO profiles (user_id, skills) VALUES ($1, '[\"Go\"]')", user
        )
        repo = await SupabaseRepository.open(fake.url, SERVICE_KEY)
        try:
            fake.before_write = user_edits
            merged = await repo.merge_github_profile(
                user,
                GithubMerge(skills=["Rust"], full_name="From GitHub", blog_url="https://b.dev"),
            )
        finally:
            await repo.aclose()
    assert merged is not None
    assert merged.full_name == "Typed By User"
    assert merged.skills == ["Go", "Elixir", "Rust"]
    assert merged.portfolio_urls == ["https://b.dev"]
    patches = fake.requests_to("PATCH", "profiles")
    assert len(patches) == 2  # the first one matched no row, so the merge read again


async def test_job_inserts_without_the_unique_index(
    backend: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """Against a schema lacking the (user_id, source_url) index inserts still skip known URLs."""
    conn = needs_sql(backend)
    await conn.execute("DROP INDEX jobs_user_id_source_url_key")
    user = await backend.seed.new_user()
    with caplog.at_level(logging.WARNING):
        assert await backend.repo.insert_new_jobs(user, _jobs(1, 2)) == 2
        assert await backend.repo.insert_new_jobs(user, _jobs(1, 2, 3)) == 1
    assert "unique index" in caplog.text
    if backend.kind == "postgres":
        # The PostgreSQL fallback serialises per user, so it is still race-free.
        batches = [_jobs(*range(10, 30)), _jobs(*range(20, 40))] * 2
        inserted = await asyncio.gather(*(backend.repo.insert_new_jobs(user, b) for b in batches))
        assert sum(inserted) == 30
    assert len(await backend.seed.rows("jobs", user_id=user)) == 3 + (
        30 if backend.kind == "postgres" else 0
    )
