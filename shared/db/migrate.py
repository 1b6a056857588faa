"""`howlerhire migrate`: apply the versioned SQL migrations to the database at DATABASE_URL.

Migrations are the files `migrations/NNNN_name.sql`, applied in version order, each in
its own transaction together with its row in `schema_migrations` (version, name,
sha256 checksum). A session advisory lock serialises concurrent migrators (two services
starting at once): the second waits, then finds nothing left to do. Re-running is a
no-op. A migration whose file changed after it was applied stops the run: migrations
are append-only, a fix is a new file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import sys
from collections.abc import Mapping
from importlib import resources

import asyncpg
import msgspec

from shared.config import Settings, load_settings
from shared.errors import ConfigError

# An arbitrary constant that names "the HowlerHire schema" among advisory locks.
MIGRATION_LOCK_KEY = 0x486F776C65724869  # "HowlerHi"

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version text PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrateSettings(Settings, frozen=True, kw_only=True):
    """`howlerhire migrate`: where the schema goes (required)."""

    database_url: str


def load_migrations() -> list[Migration]:
    """The migrations shipped with this package, in version order."""
    found: list[Migration] = []
    folder = resources.files("shared.db").joinpath("migrations")
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(version=match[1], name=match[2], sql=entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError(f"two migrations share a version number: {versions}")
    return found


async def migrate(dsn: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply the pending migrations; returns the versions applied by this call."""
    pending = load_migrations() if migrations is None else migrations
    conn = await asyncpg.connect(dsn, server_settings={"timezone": "UTC"})
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            return await _apply(conn, pending)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await conn.close()


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_BOOKKEEPING)
    rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
    applied = {row["version"]: row["checksum"] for row in rows}
    done: list[str] = []
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None:
            if recorded != migration.checksum:
                raise ConfigError(
                    f"migration {migration.version}_{migration.name} changed after it was "
                    "applied; migrations are append-only, add a new one instead"
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        done.append(migration.version)
    return done


def main(environ: Mapping[str, str] | None = None) -> int:
    """Entry point of `howlerhire migrate`; returns the process exit code."""
    env = os.environ if environ is None else environ
    try:
        if not env.get("DATABASE_URL", "").strip() and env.get("SUPABASE_URL", "").strip():
            raise ConfigError(
                "DATABASE_URL is not set. A hosted Supabase project already has its schema "
                "and needs no migration; to migrate it anyway, set DATABASE_URL to its "
                "direct connection string"
            )
        settings = load_settings(MigrateSettings, env)
        applied = asyncio.run(migrate(settings.database_url))
    except ConfigError as exc:
        print(f"howlerhire migrate: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        # Connection refused, bad credentials, SQL errors: say which, not a traceback.
        print(f"howlerhire migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"howlerhire migrate: applied {', '.join(applied)}")
    else:
        print("howlerhire migrate: schema is up to date")
    return 0
