"""Session fixtures: one real nats-server and one real PostgreSQL for the whole run.

`TEST_NATS_URL` / `TEST_DATABASE_URL` point the suite at servers someone else started.
Tests isolate themselves by a unique name prefix (streams, buckets, consumers,
databases), never by restarting the shared servers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.embedded import NatsServer, PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The team's recorded third-party payloads (../shared/fixtures)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"recorded fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer | None]:
    """The session's nats-server (None when TEST_NATS_URL names an external one)."""
    if os.environ.get("TEST_NATS_URL"):
        yield None
        return
    store = Path(tempfile.mkdtemp(prefix="howlerhire-nats-"))
    # Every test's streams reserve their max_bytes; a high ceiling keeps a long session (or
    # a small disk) from running out of reservable storage.
    server = NatsServer(store, max_file_store="1T", log_file=store / "server.log").start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_url(nats_server: NatsServer | None) -> str:
    return os.environ.get("TEST_NATS_URL") or (nats_server.url if nats_server else "")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    """The session's PostgreSQL (None when TEST_DATABASE_URL names an external one)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
        if server.data_dir is not None:
            shutil.rmtree(server.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin_dsn(postgres_server: PostgresServer | None) -> str:
    if os.environ.get("TEST_DATABASE_URL"):
        return os.environ["TEST_DATABASE_URL"]
    assert postgres_server is not None
    return postgres_server.dsn()


@pytest.fixture
async def database_url(postgres_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database of its own for one test."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    # The embedded server accepts connections before it has finished starting up (the
    # port opens first): the first test of a session on a loaded machine can see that.
    for _ in range(300):
        try:
            admin = await asyncpg.connect(postgres_admin_dsn)
            break
        except asyncpg.CannotConnectNowError:
            await asyncio.sleep(0.1)
    else:
        admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = postgres_admin_dsn.rpartition("/")
    yield f"{base}/{name}"
    admin = await asyncpg.connect(postgres_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def prefix() -> str:
    """A unique name prefix that isolates one test's streams, buckets and consumers."""
    return f"t{uuid.uuid4().hex[:10]}"
