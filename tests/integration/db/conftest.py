"""Fixtures of the data-layer suite: a migrated database and the repository under test.

`backend` runs a test once per backend: `postgres` (asyncpg on the embedded PostgreSQL)
and `supabase` (the supabase client against the PostgREST stand-in, which answers from
the same kind of database). With TEST_SUPABASE_URL and TEST_SUPABASE_SERVICE_ROLE_KEY
set, a third run, `supabase-live`, goes against that real project, seeding through its
REST API and auth admin API and deleting what it created afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg
import msgspec
import pytest

from shared.db.migrate import migrate
from shared.db.postgres import PostgresRepository
from shared.db.repository import Repository
from shared.db.supabase import SupabaseRepository
from tests.support.postgrest import FakePostgrest

SERVICE_KEY = "test-service-role-key"
LIVE = bool(
    os.environ.get("TEST_SUPABASE_URL") and os.environ.get("TEST_SUPABASE_SERVICE_ROLE_KEY")
)
BACKENDS = ["postgres", "supabase", *(["supabase-live"] if LIVE else [])]


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


class Seeder(Protocol):
    """Writes test data behind the repository's back, and reads it back as JSON rows."""

    async def new_user(self) -> uuid.UUID: ...

    async def insert(self, table: str, **values: Any) -> dict[str, Any]: ...

    async def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]: ...

    async def update(self, table: str, where: dict[str, Any], **values: Any) -> None: ...


@dataclass
class SqlSeeder:
    """Seeds with SQL on the database the backend under test uses."""

    conn: asyncpg.Connection

    async def new_user(self) -> uuid.UUID:
        return uuid.uuid4()

    async def insert(self, table: str, **values: Any) -> dict[str, Any]:
        columns = ", ".join(values)
        row = await self.conn.fetchval(
            f"INSERT INTO {table} ({columns}) SELECT {columns} "
            f"FROM json_populate_record(NULL::{table}, $1::json) "
            f"RETURNING to_json({table}.*)::text",
            _json(values),
        )
        return dict(json.loads(row))

    async def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        where = " AND ".join(f"{k}::text = ${i}" for i, k in enumerate(equals, 1)) or "true"
        found = await self.conn.fetchval(
            f"SELECT coalesce(json_agg(t ORDER BY created_at, id), '[]')::text "
            f"FROM (SELECT * FROM {table} WHERE {where}) t",
            *(str(v) for v in equals.values()),
        )
        return list(json.loads(found))

    async def update(self, table: str, where: dict[str, Any], **values: Any) -> None:
        columns = ", ".join(values)
        conditions = " AND ".join(f"{k}::text = ${i + 2}" for i, k in enumerate(where))
        await self.conn.execute(
            f"UPDATE {table} SET ({columns}) = (SELECT {columns} FROM "
            f"json_populate_record(NULL::{table}, $1::json)) WHERE {conditions}",
            _json(values),
            *(str(v) for v in where.values()),
        )


@dataclass
class RestSeeder:
    """Seeds a real Supabase project through its REST and auth admin APIs."""

    client: Any
    users: list[uuid.UUID] = field(default_factory=list)

    async def new_user(self) -> uuid.UUID:
        created = await self.client.auth.admin.create_user(
            {
                "email": f"hh-test-{uuid.uuid4().hex[:12]}@example.com",
                "password": uuid.uuid4().hex,
                "email_confirm": True,
            }
        )
        user = uuid.UUID(created.user.id)
        self.users.append(user)
        return user

    async def insert(self, table: str, **values: Any) -> dict[str, Any]:
        row = msgspec.to_builtins(values)
        query = self.client.table(table)
        # A hosted project may create the profile itself when the auth user is created.
        query = (
            query.upsert(row, on_conflict="user_id") if table == "profiles" else query.insert(row)
        )
        return dict((await query.execute()).data[0])

    async def rows(self, table: str, **equals: Any) -> list[dict[str, Any]]:
        query = self.client.table(table).select("*")
        for key, value in equals.items():
            query = query.eq(key, str(value))
        return list((await query.execute()).data)

    async def update(self, table: str, where: dict[str, Any], **values: Any) -> None:
        query = self.client.table(table).update(msgspec.to_builtins(values))
        for key, value in where.items():
            query = query.eq(key, str(value))
        await query.execute()

    async def cleanup(self) -> None:
        for user in self.users:
            for table in (
                "email_send_history",
                "job_applications",
                "jobs",
                "resumes",
                "user_subscriptions",
                "profiles",
            ):
                await self.client.table(table).delete().eq("user_id", str(user)).execute()
            await self.client.auth.admin.delete_user(str(user))


@dataclass
class Harness:
    kind: str
    repo: Repository
    seed: Seeder
    fake: FakePostgrest | None = None
    conn: asyncpg.Connection | None = None

    async def tier_id(self, name: str) -> str:
        rows = await self.seed.rows("subscription_tiers", name=name)
        return str(rows[0]["id"])


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    """A fresh database with every migration applied."""
    await migrate(database_url)
    return database_url


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Harness]:
    """The repository under test, once per backend, with a seeder for its database."""
    kind: str = request.param
    if kind == "supabase-live":
        async with _live_harness() as harness:
            yield harness
        return
    url = database_url
    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        seed = SqlSeeder(conn)
        if kind == "postgres":
            repo = await PostgresRepository.open(url, min_size=1, max_size=4)
            try:
                yield Harness(kind, repo, seed, conn=conn)
            finally:
                await repo.aclose()
        else:
            async with FakePostgrest(url, SERVICE_KEY) as fake:
                rest = await SupabaseRepository.open(fake.url, SERVICE_KEY)
                try:
                    yield Harness(kind, rest, seed, fake=fake, conn=conn)
                finally:
                    await rest.aclose()
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _live_harness() -> AsyncIterator[Harness]:
    from supabase import acreate_client

    url = os.environ["TEST_SUPABASE_URL"]
    key = os.environ["TEST_SUPABASE_SERVICE_ROLE_KEY"]
    seed = RestSeeder(await acreate_client(url, key))
    repo = await SupabaseRepository.open(url, key)
    try:
        yield Harness("supabase-live", repo, seed)
    finally:
        try:
            await seed.cleanup()
        finally:
            await repo.aclose()


def needs_sql(harness: Harness) -> asyncpg.Connection:
    """The SQL connection of a local backend; skips the test against a live project."""
    if harness.conn is None:
        pytest.skip("needs SQL access to the database (not available on a live project)")
    return harness.conn
