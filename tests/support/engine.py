"""Helpers to run the engine against the session's nats-server within one test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.client import Client as NATS

from shared.bus import Names, connect
from shared.config import EngineSettings
from shared.errors import InstanceNotFoundError
from shared.workflow import (
    Instances,
    InstanceState,
    Registry,
    Worker,
    ensure_consumers,
    ensure_topology,
)

TERMINAL = {"complete", "errored", "terminated"}


def engine_settings(prefix: str, **overrides: Any) -> EngineSettings:
    """Engine settings for one test: its own namespace and short timings."""
    values: dict[str, Any] = {
        "howlerhire_namespace": prefix,
        "ack_wait": 2.0,
        "max_deliver": 8,
        "shutdown_grace": 5.0,
        "worker_concurrency": 16,
        "stream_max_bytes": 256 * 1024**2,
        "dedup_window": 120.0,
    }
    values.update(overrides)
    return EngineSettings(**values)


async def prepare(nc: NATS, registry: Registry, settings: EngineSettings) -> Instances:
    """Create the topology and consumers, and return the instance API for the registry."""
    names = Names(settings.howlerhire_namespace)
    js = nc.jetstream()
    await ensure_topology(
        js,
        names,
        max_bytes=settings.stream_max_bytes,
        dedup_window=settings.dedup_window,
        replicas=settings.nats_replicas,
    )
    await ensure_consumers(js, names, registry, settings)
    return Instances(nc, names, {wf.id: wf.on for wf in registry})


@contextlib.asynccontextmanager
async def running_worker(
    nats_url: str, registry: Registry, settings: EngineSettings, deps: Any = None
) -> AsyncIterator[Worker]:
    """An in-process worker on its own connection, shut down gracefully at exit."""
    nc = await connect(nats_url, "test-worker", attempts=3)
    worker = Worker(nc, registry, deps, settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
        await nc.drain()


async def wait_for(
    instances: Instances,
    workflow: str,
    instance_id: str,
    until: Callable[[InstanceState], bool] | None = None,
    timeout: float = 60.0,
) -> InstanceState:
    """Poll an instance until `until` holds (default: a terminal status).

    Only "not there yet" is waited out; any other error (a bad workflow name, NATS
    gone, a failing `until`) fails the test at once with its own message.
    """
    check = until or (lambda s: s.status in TERMINAL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: InstanceState | None = None
    while loop.time() < deadline:
        try:
            last = await instances.get(workflow, instance_id)
        except InstanceNotFoundError:
            pass  # the start message is not processed yet
        else:
            if check(last):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow}/{instance_id} did not get there in {timeout}s; last={last}")


async def wait_all(
    instances: Instances, workflow: str, ids: list[str], timeout: float
) -> tuple[list[InstanceState], float]:
    """Every instance terminal within one overall bound (not a bound per run, polled one
    run after another); returns the states in `ids` order and the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    states: dict[str, InstanceState] = {}
    while True:
        pending = [i for i in ids if i not in states]
        got = await asyncio.gather(
            *(instances.get(workflow, i) for i in pending), return_exceptions=True
        )
        for iid, state in zip(pending, got, strict=True):
            if isinstance(state, InstanceNotFoundError):
                continue  # not started yet
            if isinstance(state, BaseException):
                raise state
            if state.status in TERMINAL:
                states[iid] = state
        elapsed = loop.time() - started
        if len(states) == len(ids):
            return [states[i] for i in ids], elapsed
        if elapsed > timeout:
            raise AssertionError(
                f"{len(states)}/{len(ids)} {workflow} runs ended within {timeout}s; "
                f"pending: {[i for i in ids if i not in states][:5]}"
            )
        await asyncio.sleep(0.25)


async def all_streams(js: Any) -> list[Any]:
    """Every stream on the server: `streams_info()` answers one page (256), and the session
    server holds far more streams than that by the end of a full run."""
    found: list[Any] = []
    while True:
        page = await js.streams_info(offset=len(found))
        if not page:
            return found
        found += page
