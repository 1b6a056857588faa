"""Helpers to run the engine against the session's nats-server within one test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from nats.aio.client import Client as NATS

from shared.bus import Names, connect
from shared.config import EngineSettings
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
    """Poll an instance until `until` holds (default: a terminal status)."""
    check = until or (lambda s: s.status in TERMINAL)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: InstanceState | None = None
    while loop.time() < deadline:
        with contextlib.suppress(Exception):
            last = await instances.get(workflow, instance_id)
            if check(last):
                return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow}/{instance_id} did not get there in {timeout}s; last={last}")
