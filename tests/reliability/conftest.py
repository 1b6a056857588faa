"""Fixtures of the reliability suite: the PostgreSQL ledger, a Resend fake, worker processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client as NATS

from shared.bus import connect
from shared.workflow import Instances, InstanceState
from tests.support.engine import TERMINAL, engine_settings, prepare
from tests.support.fakes.base import RunningFake
from tests.support.fakes.resend import ResendFake
from tests.support.ledger import create_schema
from tests.support.procs import Proc, spawn
from tests.support.reliable_app import REGISTRY


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


async def wait_all(
    instances: Instances, workflow: str, ids: list[str], timeout: float
) -> tuple[list[InstanceState], float]:
    """Every instance terminal within one overall bound; returns the states and the time
    taken. Polls them all in each round (not one run after another)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    states: dict[str, InstanceState] = {}
    while True:
        pending = [i for i in ids if i not in states]
        got = await asyncio.gather(*(instances.get(workflow, i) for i in pending))
        for iid, state in zip(pending, got, strict=True):
            if state.status in TERMINAL:
                states[iid] = state
        elapsed = loop.time() - started
        if len(states) == len(ids):
            return [states[i] for i in ids], elapsed
        if elapsed > timeout:
            raise AssertionError(
                f"{len(states)}/{len(ids)} {workflow} runs ended within {timeout}s; "
                f"first pending: {pending[:5]}"
            )
        await asyncio.sleep(0.25)
