"""The scheduler's counters: each slot it publishes, and each slot it skips as too old."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client as NATS

from services.scheduler.scheduler import Job, Scheduler
from shared.bus import Names, connect, ensure_bucket, ensure_topology
from shared.catalog import routes
from shared.metrics import metrics
from shared.schedules import bucket_name
from shared.workflow import Instances


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def nc(nats_url: str, prefix: str) -> AsyncIterator[NATS]:
    conn = await connect(nats_url, "scheduler-metrics-test", attempts=3)
    await ensure_topology(conn.jetstream(), Names(prefix), max_bytes=64 * 1024**2)
    yield conn
    await conn.drain()


def counted(name: str, job: str) -> float:
    found = metrics().registry.get_sample_value(name, {"job": job})
    return found or 0.0


async def test_fired_and_missed_slots_are_counted(nc: NATS, prefix: str) -> None:
    """Fire 10:00, come back at 13:20 with a 1 h grace: 13:00 is fired (caught up),
    11:00 and 12:00 are missed; a scheduler made but idle exports both series at 0."""
    kv = await ensure_bucket(nc.jetstream(), bucket_name(prefix))
    job = Job(f"mx-{prefix}", "cron/weekly-summary", "0 * * * *")
    clock = Clock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    sched = Scheduler(Instances(nc, Names(prefix), routes()), kv, [job], timedelta(hours=1), clock)
    fired, missed = "howlerhire_cron_slots_fired_total", "howlerhire_cron_slots_missed_total"
    assert metrics().registry.get_sample_value(fired, {"job": job.name}) == 0.0
    assert metrics().registry.get_sample_value(missed, {"job": job.name}) == 0.0
    await sched.fire(job, clock.now)
    assert (counted(fired, job.name), counted(missed, job.name)) == (1.0, 0.0)
    clock.now = datetime(2026, 12, 7, 13, 20, tzinfo=UTC)
    await sched.catch_up(job)
    assert sched.fired[-1] == (job.name, "2026-12-07T13:00:00Z")
    assert (counted(fired, job.name), counted(missed, job.name)) == (2.0, 2.0)
