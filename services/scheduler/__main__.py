"""`python -m services.scheduler`: publish the cron events (weekly summary, daily discovery).

Environment: NATS_URL, HOWLERHIRE_NAMESPACE, WEEKLY_SUMMARY_CRON (`0 9 * * 1`),
WEEKLY_SUMMARY_TZ (UTC), DAILY_DISCOVERY_CRON (`0 6 * * *`), DAILY_DISCOVERY_TZ (UTC),
SCHEDULER_CATCHUP (seconds a missed slot may still be fired after, default 3600). Run
as many replicas as you like: each slot still starts one run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from datetime import timedelta

import nats.errors

from services.scheduler.scheduler import Job, Scheduler
from shared.bus import Names, connect, ensure_bucket, ensure_topology
from shared.catalog import consumer_specs, routes
from shared.config import EngineSettings, Settings, load_settings
from shared.errors import ConfigError
from shared.metrics import metrics
from shared.metrics import serve as serve_metrics
from shared.schedules import bucket_name
from shared.service import configure_logging
from shared.workflow import Instances, ensure_consumers

log = logging.getLogger("services.scheduler")


class SchedulerSettings(Settings, frozen=True, kw_only=True):
    weekly_summary_cron: str = "0 9 * * 1"
    weekly_summary_tz: str = "UTC"
    daily_discovery_cron: str = "0 6 * * *"
    daily_discovery_tz: str = "UTC"
    scheduler_catchup: float = 3600.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheduler_catchup < 0:
            raise ConfigError("SCHEDULER_CATCHUP must be a number of seconds, 0 or more")

    def jobs(self) -> list[Job]:
        return [
            Job(
                "weekly-summary",
                "cron/weekly-summary",
                self.weekly_summary_cron,
                self.weekly_summary_tz,
            ),
            Job(
                "daily-discovery",
                "cron/daily-discovery",
                self.daily_discovery_cron,
                self.daily_discovery_tz,
            ),
        ]


async def serve(settings: SchedulerSettings, engine: EngineSettings) -> int:
    jobs = settings.jobs()
    loop = asyncio.get_running_loop()
    serve_metrics(engine.metrics_port, engine.metrics_host)
    nc = await connect(engine.nats_url, "howlerhire-scheduler")
    metrics().watch_connection(lambda: nc.is_connected)
    try:
        names = Names(engine.howlerhire_namespace)
        js = nc.jetstream()
        await ensure_topology(
            js,
            names,
            max_bytes=engine.stream_max_bytes,
            dedup_window=engine.dedup_window,
            replicas=engine.nats_replicas,
        )
        # The consumers exist before the first event, so none can be missed.
        await ensure_consumers(js, names, consumer_specs(), engine, create_only=True)
        kv = await ensure_bucket(js, bucket_name(names.namespace), replicas=engine.nats_replicas)
        scheduler = Scheduler(
            Instances(nc, names, routes()), kv, jobs, timedelta(seconds=settings.scheduler_catchup)
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, scheduler.stop)
        for job in jobs:
            log.info(
                "scheduling %s: %r (%s) → %s", job.name, job.expression, job.timezone, job.event
            )
        log.info("scheduler started")
        await scheduler.run()
    finally:
        with contextlib.suppress(nats.errors.Error, OSError, asyncio.TimeoutError):
            await nc.drain()
    return 0


def main() -> int:
    try:
        configure_logging("scheduler")
        settings = load_settings(SchedulerSettings, os.environ)
        settings.jobs()
        engine = load_settings(EngineSettings, os.environ)
    except ConfigError as exc:
        print(f"scheduler: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve(settings, engine))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
