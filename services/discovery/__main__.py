"""`python -m services.discovery`: the job-discovery and daily-discovery worker.

Environment: NATS_URL, HOWLERHIRE_NAMESPACE, DATABASE_URL or SUPABASE_URL +
SUPABASE_SERVICE_ROLE_KEY, DISCOVERY_SOURCES (boards to read, e.g.
`remoteok,weworkremotely,remotive,greenhouse:stripe,lever:matchgroup,ashby:ramp`),
DISCOVERY_SNAPSHOT_TTL (seconds a board snapshot serves every run, default 3600),
DISCOVERY_MAX_PER_SOURCE, DISCOVERY_PAGE_SIZE, DISCOVERY_RETRY_DELAY /
DISCOVERY_ROUNDS (when every board fails), DISCOVERY_FETCH_TIMEOUT,
DISCOVERY_FETCH_RETRIES / DISCOVERY_FETCH_RETRY_DELAY (one board, within a round),
DISCOVERY_FAILURE_HOLD, and each board's URL (REMOTEOK_API_URL, WWR_FEED_URLS,
REMOTIVE_API_URL, GREENHOUSE_API_URL, LEVER_API_URL, ASHBY_API_URL, ARBEITNOW_API_URL,
HIMALAYAS_API_URL).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Annotated

from msgspec import Meta

from services.discovery.snapshots import SnapshotStore, UsageLedger
from services.discovery.steps import DiscoveryDeps
from services.discovery.workflows import Policies, daily_discovery, job_discovery
from shared.bus import Names, connect
from shared.catalog import routes
from shared.config import EngineSettings, Settings, load_settings
from shared.db import open_repository
from shared.errors import ConfigError
from shared.http import HttpSettings, create_http_client
from shared.service import run_service
from shared.sources import BoardSettings, PoliteFetcher, configured_boards
from shared.workflow import EventEnvelope, Instances, Registry, RetryPolicy

DISCOVERY_EVENT = "job/discovery.requested"


class DiscoverySettings(Settings, frozen=True, kw_only=True):
    discovery_snapshot_ttl: Annotated[float, Meta(ge=1)] = 3600.0
    discovery_max_per_source: Annotated[int, Meta(ge=1, le=500)] = 50
    discovery_page_size: Annotated[int, Meta(ge=1, le=5000)] = 500
    discovery_rounds: Annotated[int, Meta(ge=1)] = 3
    discovery_retry_delay: Annotated[float, Meta(ge=0)] = 900.0
    discovery_fetch_timeout: Annotated[float, Meta(gt=0)] = 30.0
    discovery_fetch_retries: Annotated[int, Meta(ge=0, le=10)] = 2
    discovery_fetch_retry_delay: Annotated[float, Meta(ge=0)] = 2.0
    discovery_failure_hold: Annotated[float, Meta(ge=0)] = 30.0


class EventSender:
    """Sends discovery requests the way the gateway does (Instances.send): one event per
    user, its id derived from user and day, so a re-send is a no-op."""

    def __init__(self, instances: Instances) -> None:
        self._instances = instances

    async def send_discovery_requests(self, user_ids: Sequence[str], day: str) -> int:
        events = [
            EventEnvelope(
                name=DISCOVERY_EVENT, data={"userId": user}, id=f"daily-discovery:{user}:{day}"
            )
            for user in user_ids
        ]
        await self._instances.send(events)
        return len(events)


@contextlib.asynccontextmanager
async def open_deps(environ: Mapping[str, str]) -> AsyncIterator[DiscoveryDeps]:
    settings = load_settings(DiscoverySettings, environ)
    boards = configured_boards(load_settings(BoardSettings, environ))
    engine = load_settings(EngineSettings, environ)
    async with contextlib.AsyncExitStack() as stack:
        repo = await stack.enter_async_context(open_repository(environ))
        client = await stack.enter_async_context(
            create_http_client(load_settings(HttpSettings, environ))
        )
        nc = await connect(engine.nats_url, "howlerhire-discovery-store")
        stack.push_async_callback(nc.drain)
        js = nc.jetstream()
        names = Names(engine.howlerhire_namespace)
        snapshots = await SnapshotStore.open(
            js,
            names.namespace,
            replicas=engine.nats_replicas,
            wait=settings.discovery_fetch_timeout * 2,
            failure_hold=settings.discovery_failure_hold,
        )
        usage = await UsageLedger.open(js, names.namespace, replicas=engine.nats_replicas)
        yield DiscoveryDeps(
            repo=repo,
            boards=boards,
            fetcher=PoliteFetcher(client, timeout=settings.discovery_fetch_timeout),
            snapshots=snapshots,
            usage=usage,
            sender=EventSender(Instances(nc, names, routes())),
            snapshot_ttl=timedelta(seconds=settings.discovery_snapshot_ttl),
            max_per_source=settings.discovery_max_per_source,
            page_size=settings.discovery_page_size,
        )


def main() -> int:
    try:
        settings = load_settings(DiscoverySettings, os.environ)
        configured_boards(load_settings(BoardSettings, os.environ))
    except ConfigError as exc:
        print(f"discovery: configuration error: {exc}", file=sys.stderr)
        return 2
    policies = Policies(
        fetch=RetryPolicy(
            limit=settings.discovery_fetch_retries,
            delay=timedelta(seconds=settings.discovery_fetch_retry_delay),
            backoff="exponential",
        ),
        rounds=settings.discovery_rounds,
        retry_delay=timedelta(seconds=settings.discovery_retry_delay),
    )
    registry = Registry([job_discovery(policies), daily_discovery])
    return run_service("discovery", registry, open_deps)


if __name__ == "__main__":
    sys.exit(main())
