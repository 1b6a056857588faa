"""Running a worker service: environment → settings, resources, signals, graceful stop.

Every `services/<name>/__main__.py` calls `run_service(...)`; this is where the
environment is read and resources are opened (Temporal's worker.py pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any

from shared.bus import check_durability, connect
from shared.config import EngineSettings, load_settings
from shared.errors import ConfigError, UpstreamError
from shared.logs import configure
from shared.metrics import metrics, serve
from shared.workflow import Registry, Worker

log = logging.getLogger(__name__)

DepsFactory = Callable[[Mapping[str, str]], AbstractAsyncContextManager[Any]]


def configure_logging(service: str, environ: Mapping[str, str] | None = None) -> None:
    """Log as `service` in LOG_FORMAT (json off a terminal) at LOG_LEVEL: `shared.logs`.
    Raises ConfigError for an invalid LOG_FORMAT."""
    configure(service, os.environ if environ is None else environ)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """EVENT_LOOP's loop: uvloop's, or None for asyncio's default."""
    if kind == "uvloop":
        import uvloop  # only where chosen: the import is a C extension's load

        return uvloop.new_event_loop
    return None


@contextlib.asynccontextmanager
async def no_deps(environ: Mapping[str, str]) -> AsyncIterator[None]:
    yield None


def run_service(
    name: str,
    registry: Registry,
    deps_factory: DepsFactory = no_deps,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run `registry`'s workflows until SIGTERM/SIGINT; return the process exit code."""
    env = dict(os.environ if environ is None else environ)
    try:
        configure_logging(name, env)
        settings = load_settings(EngineSettings, env)
        with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
            return runner.run(_serve(name, registry, deps_factory, env, settings))
    except ConfigError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


async def _serve(
    name: str,
    registry: Registry,
    deps_factory: DepsFactory,
    env: Mapping[str, str],
    settings: EngineSettings,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Before NATS: while it is unreachable, /metrics already says so (nats_connected 0).
    metrics().declare(wf.id for wf in registry)
    serve(settings.metrics_port, settings.metrics_host)
    async with AsyncExitStack() as stack:
        # Dependencies first: a missing secret stops the service before it touches NATS.
        opened = await _open_deps(name, deps_factory, env, stack, stop)
        if opened is None:
            return 0
        (deps,) = opened
        connecting = asyncio.create_task(connect(settings.nats_url, f"howlerhire-{name}"))
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([connecting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            log.info("stopped before NATS was reachable")
            return 0
        nc = connecting.result()
        metrics().watch_connection(lambda: nc.is_connected)
        stack.push_async_callback(nc.drain)  # drained last, so buffered acks are flushed
        await check_durability(settings.nats_monitor_url, settings.durability)
        worker = Worker(nc, registry, deps, settings)
        stopper.add_done_callback(lambda _: worker.stop())
        if stop.is_set():
            return 0
        await worker.run()
    return 0


async def _open_deps(
    name: str,
    deps_factory: DepsFactory,
    env: Mapping[str, str],
    stack: AsyncExitStack,
    stop: asyncio.Event,
) -> tuple[Any] | None:
    """Open the service's dependencies; an unreachable upstream (a database that is still
    starting, say) is retried and reported, a configuration error is not. None if the
    service was told to stop meanwhile."""
    wait = 1.0
    tries = 0
    while True:
        tries += 1
        try:
            return (await stack.enter_async_context(deps_factory(env)),)
        except UpstreamError as exc:
            if tries == 1 or tries % 10 == 0:
                log.warning(
                    "%s: a dependency is unreachable (%s); retrying (try %d)", name, exc, tries
                )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return None
        wait = min(wait * 2, 15.0)
