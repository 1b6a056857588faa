"""What the Supabase backend puts on the wire, as the PostgREST stand-in records it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from shared.db import GithubMerge, NewJob, ProfileFill, open_repository
from shared.db.migrate import migrate
from shared.db.postgres import PostgresRepository
from shared.db.supabase import SupabaseRepository
from shared.embedded import free_port
from shared.errors import ConfigError, NonRetryableError, UpstreamError
from tests.integration.db.conftest import SERVICE_KEY
from tests.support.postgrest import FakePostgrest


@pytest.fixture
async def fake(database_url: str) -> AsyncIterator[FakePostgrest]:
    await migrate(database_url)
    async with FakePostgrest(database_url, SERVICE_KEY) as server:
        yield server


@pytest.fixture
async def rest(fake: FakePostgrest) -> AsyncIterator[SupabaseRepository]:
    repo = await SupabaseRepository.open(fake.url, SERVICE_KEY)
    try:
        yield repo
    finally:
        await repo.aclose()


async def test_requests_carry_the_service_key_and_schema(
    fake: FakePostgrest, rest: SupabaseRepository
) -> None:
    """Every request sends apikey, a Bearer token and the public schema profile."""
    await rest.get_profile(uuid.uuid4())
    await rest.set_application_status(uuid.uuid4(), uuid.uuid4(), "failed", "boom")
    check, get, patch = fake.requests
    assert [(r.method, r.table) for r in (check, get, patch)] == [
        ("GET", "subscription_tiers"),  # the access check of `open`
        ("GET", "profiles"),
        ("PATCH", "job_applications"),
    ]
    for request in (check, get, patch):
        assert request.headers["apikey"] == SERVICE_KEY
        assert request.headers["authorization"] == f"Bearer {SERVICE_KEY}"
    assert get.headers["accept-profile"] == "public"
    assert patch.headers["content-profile"] == "public"
    assert "return=representation" in patch.prefer


async def test_a_wrong_key_stops_the_service_at_start(fake: FakePostgrest) -> None:
    """A refused service key fails `open` with a ConfigError naming the variable."""
    with pytest.raises(ConfigError, match="SUPABASE_SERVICE_ROLE_KEY was refused"):
        await SupabaseRepository.open(fake.url, "wrong-key")
    assert fake.requests == []  # refused at the gateway, before PostgREST


async def test_an_unreachable_server_is_retryable(fake: FakePostgrest) -> None:
    """A connection failure, at start or later, is an UpstreamError (retryable)."""
    with pytest.raises(UpstreamError, match="SUPABASE_URL is unreachable"):
        await SupabaseRepository.open(f"http://127.0.0.1:{free_port()}", SERVICE_KEY)
    repo = await SupabaseRepository.open(fake.url, SERVICE_KEY)
    await fake.stop()  # the server goes away after start
    try:
        with pytest.raises(UpstreamError, match="ConnectError"):
            await repo.get_tier(uuid.uuid4())
    finally:
        await repo.aclose()


async def test_database_errors_are_classified(
    fake: FakePostgrest, rest: SupabaseRepository
) -> None:
    """A constraint violation reported by PostgREST is permanent (NonRetryableError)."""
    user = uuid.uuid4()
    await fake.pool.execute("INSERT INTO profiles (user_id) VALUES ($1)", user)
    await fake.pool.execute(
        "ALTER TABLE profiles ADD CONSTRAINT short_names CHECK (length(full_name) < 5)"
    )
    with pytest.raises(NonRetryableError, match="23514"):
        await rest.fill_empty_profile_fields(user, ProfileFill(full_name="Much too long"))


async def test_job_inserts_are_ignore_duplicates_upserts(
    fake: FakePostgrest, rest: SupabaseRepository
) -> None:
    """insert_new_jobs POSTs with on_conflict=user_id,source_url and resolution=ignore."""
    user = uuid.uuid4()
    jobs = [NewJob(source="wwr", source_url=f"https://wwr.example/{n}", title="T") for n in (1, 2)]
    assert await rest.insert_new_jobs(user, jobs) == 2
    (post,) = fake.requests_to("POST", "jobs")
    assert post.params("on_conflict") == ["user_id,source_url"]
    assert {"resolution=ignore-duplicates", "return=representation"} <= post.prefer
    assert post.params("select") == ["id"]
    assert [row["user_id"] for row in post.body] == [str(user)] * 2
    assert {row["status"] for row in post.body} == {"new"}
    assert "discovered_at" not in post.body[0]  # the database's clock, not ours


async def test_merges_write_with_compare_and_set_filters(
    fake: FakePostgrest, rest: SupabaseRepository
) -> None:
    """A merge's PATCH is conditioned on each written column still holding what was read."""
    user = uuid.uuid4()
    await fake.pool.execute(
        "INSERT INTO profiles (user_id, full_name, skills) VALUES ($1, NULL, '[\"Go\"]')", user
    )
    await rest.merge_github_profile(user, GithubMerge(skills=["Rust"], full_name="Ada"))
    (patch,) = fake.requests_to("PATCH", "profiles")
    assert patch.params("user_id") == [f"eq.{user}"]
    assert patch.params("full_name") == ["is.null"]
    assert patch.params("skills") == ['eq.["Go"]']
    assert patch.body["skills"] == ["Go", "Rust"]
    assert patch.body["full_name"] == "Ada"
    await rest.fill_empty_profile_fields(user, ProfileFill(full_name="Other"))
    assert len(fake.requests_to("PATCH", "profiles")) == 1  # nothing empty: no write


async def test_counts_are_head_requests_with_exact_count(
    fake: FakePostgrest, rest: SupabaseRepository
) -> None:
    """Counting sends HEAD with Prefer count=exact and reads the Content-Range total."""
    user = uuid.uuid4()
    since = datetime(2026, 1, 5, tzinfo=UTC)
    assert await rest.count_ready_applications(user, since) == 0
    (head,) = fake.requests_to("HEAD", "job_applications")
    assert "count=exact" in head.prefer
    assert head.params("created_at") == ["gte.2026-01-05T00:00:00+00:00"]
    assert head.params("status") == ["eq.ready"]


async def test_the_stand_in_refuses_what_it_does_not_implement(fake: FakePostgrest) -> None:
    """Unknown columns, operators and tables get PostgREST's error codes, not silence."""
    headers = {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}
    async with httpx.AsyncClient(base_url=fake.url + "/rest/v1", headers=headers) as client:
        missing_table = await client.get("/nope")
        missing_column = await client.get("/jobs", params={"nope": "eq.1"})
        unknown_operator = await client.get("/jobs", params={"title": "fts.x"})
        wrong_schema = await client.get("/jobs", headers={"Accept-Profile": "auth"})
    assert (missing_table.status_code, missing_table.json()["code"]) == (404, "PGRST205")
    assert (missing_column.status_code, missing_column.json()["code"]) == (400, "42703")
    assert unknown_operator.status_code == 400
    assert (wrong_schema.status_code, wrong_schema.json()["code"]) == (406, "PGRST106")


async def test_open_repository_chooses_the_backend(database_url: str, fake: FakePostgrest) -> None:
    """DATABASE_URL wins; Supabase's pair alone selects REST; neither names the variables."""
    supabase = {"SUPABASE_URL": fake.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY}
    async with open_repository({**supabase, "DATABASE_URL": database_url}) as repo:
        assert isinstance(repo, PostgresRepository)
        assert (await repo.get_tier(uuid.uuid4())).name == "free"
    async with open_repository(supabase) as repo:
        assert isinstance(repo, SupabaseRepository)
        assert (await repo.get_tier(uuid.uuid4())).name == "free"
    with pytest.raises(ConfigError, match="DATABASE_URL, or SUPABASE_URL and SUPABASE_SERVICE"):
        async with open_repository({}):
            pass


async def test_postgres_backend_start_up_failures(database_url: str) -> None:
    """A wrong database name is a ConfigError naming DATABASE_URL; no server is retryable."""
    base = database_url.rsplit("/", 1)[0]
    with pytest.raises(ConfigError, match="DATABASE_URL was refused"):
        await PostgresRepository.open(f"{base}/no_such_database")
    with pytest.raises(ConfigError, match="DATABASE_URL is invalid"):
        await PostgresRepository.open("mysql://user:secret@127.0.0.1/db")
    with pytest.raises(UpstreamError):
        await PostgresRepository.open(f"postgresql://postgres@127.0.0.1:{free_port()}/db")
