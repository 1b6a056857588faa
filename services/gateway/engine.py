"""The gateway's view of the engine, and how it is opened against NATS at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import nats
import nats.errors
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from nats.aio.client import Client as NATS

from shared.bus import Names, connect, ensure_topology
from shared.catalog import consumer_specs, routes
from shared.config import EngineSettings
from shared.erasure import ErasureReport
from shared.metrics import metrics
from shared.workflow import (
    BulkFilter,
    BulkJob,
    EventEnvelope,
    Instances,
    InstanceState,
    LimitState,
    Page,
    Rate,
    Started,
    ensure_consumers,
)
from shared.workflow.bulk import BulkAction
from shared.workflow.control import DeadLetterPage
from shared.workflow.model import DeadLetter
from shared.workflow.progress import ProgressFeed

log = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    """What the gateway asks of the engine (`shared.workflow.Instances` provides it)."""

    routes: dict[str, tuple[str, ...]]

    async def trigger(
        self,
        workflow: str,
        params: Any,
        instance_id: str | None = None,
    ) -> tuple[InstanceState, bool]: ...

    async def send(self, events: Iterable[EventEnvelope]) -> list[tuple[str, list[Started]]]: ...

    async def get(self, workflow: str, instance_id: str) -> InstanceState: ...

    async def list(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
        scan_limit: int = 5000,
        user: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page: ...

    async def pause(self, workflow: str, instance_id: str) -> InstanceState: ...

    async def resume(self, workflow: str, instance_id: str) -> InstanceState: ...

    async def terminate(self, workflow: str, instance_id: str) -> InstanceState: ...

    async def restart(
        self, workflow: str, instance_id: str, from_step: str | None = None
    ) -> InstanceState: ...

    async def bulk(
        self,
        action: BulkAction,
        where: BulkFilter,
        *,
        dry_run: bool = False,
        from_step: str | None = None,
        rate: float = 50.0,
        key: str | None = None,
    ) -> BulkJob: ...

    async def bulk_job(self, job_id: str) -> BulkJob | None: ...

    async def dead_letters(
        self,
        workflow: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        cursor: int | None = None,
    ) -> DeadLetterPage: ...

    async def dead_letter(self, seq: int) -> DeadLetter: ...

    async def redrive(self, seq: int) -> DeadLetter: ...

    async def redrive_all(self, workflow: str | None = None, reason: str | None = None) -> int: ...

    async def purge_dead_letters(
        self, workflow: str | None = None, reason: str | None = None, seq: int | None = None
    ) -> int: ...

    async def send_event(
        self,
        workflow: str,
        instance_id: str,
        event_type: str,
        payload: Any,
        event_id: str | None = None,
    ) -> str: ...

    async def ping(self, timeout: float = 2.0) -> None: ...

    def progress_feed(self) -> ProgressFeed: ...

    async def erase_user(
        self, user_id: str, *, requested_by: str, outbox: str | None = None
    ) -> ErasureReport: ...

    async def invalidate_cache(
        self, workflow: str, step: str | None = None, prefix: str | None = None
    ) -> int: ...

    async def rate_limits(self, rates: dict[str, Rate] | None = None) -> Sequence[LimitState]: ...


# How handlers ask for the engine (injected by name from the app's state). Not validated
# per request: an isinstance check against a Protocol was ~8 % of the gateway's CPU.
EngineDep = NamedDependency[SkipValidation[Engine]]


async def connect_gateway(url: str) -> NATS:
    """Connect to NATS (retrying until it answers) with publish buffering switched off.

    nats-py buffers publishes made while it reconnects and sends them once it is back. For
    the gateway that would be wrong: a request answered 503 ("not stored, retry") would
    then be stored after all, and an instance whose id the caller never learned could
    start. With `pending_size=0` such a publish fails at once and is retried by
    `shared.bus.publish` with the same message id, then answered 503.
    """
    return await connect(url, "gateway", pending_size=0)


@contextlib.asynccontextmanager
async def nats_engine(settings: EngineSettings) -> AsyncIterator[Engine]:
    """Connect, create the topology and every workflow's durable consumer (so that no event
    accepted from now on can be missed), and hand out the instance API; drain at exit."""
    nc = await connect_gateway(settings.nats_url)
    metrics().watch_connection(lambda: nc.is_connected)
    try:
        names = Names(settings.howlerhire_namespace)
        js = nc.jetstream()
        await ensure_topology(
            js,
            names,
            max_bytes=settings.stream_max_bytes,
            dedup_window=settings.dedup_window,
            replicas=settings.nats_replicas,
        )
        await ensure_consumers(js, names, consumer_specs(), settings, create_only=True)
        instances = Instances(nc, names, routes(), settings=settings)
        try:
            yield instances
        finally:
            await instances.close()
    finally:
        with contextlib.suppress(nats.errors.Error, OSError, asyncio.TimeoutError):
            await nc.drain()
