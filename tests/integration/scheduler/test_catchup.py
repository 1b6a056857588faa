"""Missed cron slots after downtime: fired within SCHEDULER_CATCHUP, skipped (and counted)
beyond it; the same slot fired by two schedulers is one event and one instance."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from nats.aio.client import Client as NATS

from services.scheduler.scheduler import Job, Scheduler
from shared.bus import Names, connect, ensure_bucket, ensure_topology
from shared.catalog import routes
from shared.schedules import bucket_name, read_schedules
from shared.workflow import Instances
from shared.workflow.control import event_internal_id


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def nc(nats_url: str, prefix: str) -> AsyncIterator[NATS]:
    conn = await connect(nats_url, "catchup-test", attempts=3)
    await ensure_topology(conn.jetstream(), Names(prefix), max_bytes=64 * 1024**2)
    yield conn
    await conn.drain()


async def scheduler(nc: NATS, prefix: str, clock: Clock, catchup: timedelta) -> Scheduler:
    kv = await ensure_bucket(nc.jetstream(), bucket_name(prefix))
    job = Job("weekly-summary", "cron/weekly-summary", "0 * * * *")  # hourly
    return Scheduler(Instances(nc, Names(prefix), routes()), kv, [job], catchup, clock)


async def events_stored(nc: NATS, prefix: str) -> int:
    names = Names(prefix)
    subject = names.event_subject("cron/weekly-summary")
    info = await nc.jetstream().stream_info(names.stream, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def test_catch_up_within_and_beyond_the_grace(nc: NATS, prefix: str) -> None:
    """Down from 10:00 to 12:20 with a 1 h grace: 12:00 is fired, 11:00 skipped and
    counted; with a 10 min grace nothing is fired and both are skipped."""
    clock = Clock(datetime(2026, 12, 7, 10, 0, tzinfo=UTC))
    sched = await scheduler(nc, prefix, clock, timedelta(hours=1))
    [job] = sched.jobs
    await sched.fire(job, clock.now)
    clock.now = datetime(2026, 12, 7, 12, 20, tzinfo=UTC)
    last = await sched.catch_up(job)
    assert last == datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    assert sched.fired == [
        ("weekly-summary", "2026-12-07T10:00:00Z"),
        ("weekly-summary", "2026-12-07T12:00:00Z"),
    ]
    [state] = await read_schedules(nc.jetstream(), prefix)
    assert (state.last_slot, state.skipped) == ("2026-12-07T12:00:00Z", 1)
    assert state.next_fire == "2026-12-07T13:00:00Z"

    clock.now = datetime(2026, 12, 7, 14, 20, tzinfo=UTC)
    strict = await scheduler(nc, prefix, clock, timedelta(minutes=10))
    await strict.catch_up(job)
    assert strict.fired == []
    [state] = await read_schedules(nc.jetstream(), prefix)
    assert (state.last_slot, state.skipped) == ("2026-12-07T12:00:00Z", 3)
    assert await events_stored(nc, prefix) == 2


async def test_the_same_slot_from_two_schedulers_is_one_event(nc: NATS, prefix: str) -> None:
    """Two replicas fire 09:00: one stored event, one instance id, one record advance."""
    clock = Clock(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    one = await scheduler(nc, prefix, clock, timedelta(hours=1))
    two = await scheduler(nc, prefix, clock, timedelta(hours=1))
    [job] = one.jobs
    await one.fire(job, clock.now)
    await two.fire(job, clock.now)
    assert await events_stored(nc, prefix) == 1
    instances = Instances(nc, Names(prefix), routes())
    instance_id = event_internal_id(job.event_id(clock.now))
    state_of_run = await instances.get("weekly-summary", instance_id)
    assert state_of_run.status == "queued"
    page = await instances.list("weekly-summary")
    assert [s.instance_id for s in page.items] == [instance_id]
    [state] = await read_schedules(nc.jetstream(), prefix)
    assert state.last_slot == "2026-12-07T09:00:00Z"
