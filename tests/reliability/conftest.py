"""Fixtures of the reliability suite: the PostgreSQL ledger, a Resend fake, worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from shared.bus import Names, connect
from shared.workflow import Instances
from tests.support.engine import engine_settings, prepare, wait_all
from tests.support.fakes.base import RunningFake
from tests.support.fakes.resend import ResendFake
from tests.support.ledger import RecordWatch, create_schema
from tests.support.procs import Proc, spawn
from tests.support.reliable_app import REGISTRY

__all__ = ["start", "wait_all", "wait_started"]


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await connect(nats_url, "test-client", attempts=3)
    yield client
    await client.drain()


@pytest.fixture
async def ledger_dsn(database_url: str) -> str:
    await create_schema(database_url)
    return database_url


@pytest.fixture
def resend(fixtures_dir: Path) -> Iterator[RunningFake]:
    with RunningFake(ResendFake(fixtures_dir)) as fake:
        yield fake


@pytest.fixture
def rel_env(nats_url: str, prefix: str, ledger_dsn: str, resend: RunningFake) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "2",
        "MAX_DELIVER": "8",
        "WORKER_CONCURRENCY": "8",
        "SHUTDOWN_GRACE": "10",
        "LEDGER_DSN": ledger_dsn,
        "RESEND_URL": resend.url,
        "STEP_SLEEP": "2",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
async def record_watch(nc: NATS, prefix: str, rel_instances: Instances) -> RecordWatch:
    """Started with the topology, before any run: sees every record of `ledgered`."""
    return await RecordWatch.start(nc, Names(prefix), "ledgered")


@pytest.fixture
async def rel_instances(nc: NATS, prefix: str) -> Instances:
    return await prepare(nc, REGISTRY, engine_settings(prefix, ack_wait=2.0))


def start(env: dict[str, str], tmp_path: Path, n: int, **extra: str) -> Proc:
    return spawn("tests.support.reliable_app", {**env, **extra}, tmp_path / f"rworker{n}.log")


async def wait_started(proc: Proc, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while "worker started" not in proc.output():
        assert proc.alive(), proc.output()
        assert loop.time() < deadline, f"worker did not start in {timeout}s: {proc.output()}"
        await asyncio.sleep(0.05)
