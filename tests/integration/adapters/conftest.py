"""Fixtures for the adapter tests: fake third-party servers (one per session, reset per
test), a canary, the shared httpx client, and distinctive fake secrets (RELIABILITY S7)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.http import create_http_client
from tests.support.fakes import (
    AnthropicFake,
    Canary,
    GitHubFake,
    RemoteOKFake,
    ResendFake,
    RunningFake,
    StorageFake,
    WeWorkRemotelyFake,
)

# Distinctive fake secrets: any occurrence of these in a log, message or output is a leak.
ANTHROPIC_KEY = "sk-ant-FAKE-a1b2c3d4e5f6-anthropic-secret-S7"
RESEND_KEY = "re_FAKE_9z8y7x6w5v4u_resend_secret_S7"
GITHUB_TOKEN = "ghp_FAKE0123456789abcdefGITHUBsecretS7"
SECRETS = (ANTHROPIC_KEY, RESEND_KEY, GITHUB_TOKEN)


def _serve(app_factory: object) -> Iterator[RunningFake]:
    fake = RunningFake(app_factory).start()  # type: ignore[arg-type]
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="session")
def _anthropic_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(AnthropicFake(fixtures_dir))


@pytest.fixture(scope="session")
def _resend_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(ResendFake(fixtures_dir))


@pytest.fixture(scope="session")
def _github_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(GitHubFake(fixtures_dir))


@pytest.fixture(scope="session")
def _remoteok_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(RemoteOKFake(fixtures_dir))


@pytest.fixture(scope="session")
def _wwr_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(WeWorkRemotelyFake(fixtures_dir))


@pytest.fixture(scope="session")
def _storage_server(fixtures_dir: Path) -> Iterator[RunningFake]:
    yield from _serve(StorageFake(fixtures_dir))


@pytest.fixture(scope="session")
def _canary() -> Iterator[Canary]:
    canary = Canary().start()
    try:
        yield canary
    finally:
        canary.stop()


@pytest.fixture
def anthropic_fake(_anthropic_server: RunningFake) -> RunningFake:
    """The fake Anthropic API, reset."""
    _anthropic_server.control.reset()
    return _anthropic_server


@pytest.fixture
def resend_fake(_resend_server: RunningFake) -> RunningFake:
    """The fake Resend API, reset."""
    _resend_server.control.reset()
    return _resend_server


@pytest.fixture
def github_fake(_github_server: RunningFake) -> RunningFake:
    """The fake GitHub API, reset."""
    _github_server.control.reset()
    return _github_server


@pytest.fixture
def remoteok_fake(_remoteok_server: RunningFake) -> RunningFake:
    """The fake RemoteOK API, reset."""
    _remoteok_server.control.reset()
    return _remoteok_server


@pytest.fixture
def wwr_fake(_wwr_server: RunningFake) -> RunningFake:
    """The fake WeWorkRemotely feeds, reset."""
    _wwr_server.control.reset()
    return _wwr_server


@pytest.fixture
def storage_fake(_storage_server: RunningFake) -> RunningFake:
    """The fake Supabase Storage, reset (no objects)."""
    _storage_server.control.reset()
    return _storage_server


@pytest.fixture
def canary(_canary: Canary) -> Canary:
    """A port that counts accepted connections, reset to zero."""
    _canary.reset()
    return _canary


@pytest.fixture
async def http_client() -> AsyncIterator[object]:
    """The process's shared httpx client, as services create it."""
    async with create_http_client() as client:
        yield client
