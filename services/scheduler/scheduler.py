"""Publishing cron events exactly once per slot, from any number of scheduler replicas.

Each job's slots come from its APScheduler 3 `CronTrigger`. At a slot every replica
publishes the job's event through `Instances.send` (the gateway's path) with the event
id `cron:<job>:<slot ISO UTC>`: JetStream's duplicate window stores it once, and the
instance id derived from it lets the engine start one run even beyond that window.

The last slot fired per job is kept in KV. On start, and whenever the loop falls behind
(a suspended process, a long GC pause), slots missed since then are fired if they are at
most SCHEDULER_CATCHUP old, oldest first; older ones are skipped, logged and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
import nats.js.errors
from apscheduler.triggers.cron import CronTrigger
from nats.js.kv import KeyValue

from shared.metrics import metrics
from shared.schedules import ScheduleState, cron_trigger, iso, next_slot, slots_between
from shared.workflow import EventEnvelope, Instances

log = logging.getLogger(__name__)

# Slots fired in one catch-up at most (a per-second test schedule down for hours).
MAX_CATCH_UP = 1000


def _now() -> datetime:
    return datetime.now(UTC)


def _parse(slot: str) -> datetime:
    return datetime.fromisoformat(slot.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Job:
    name: str
    event: str
    expression: str
    timezone: str = "UTC"
    trigger: CronTrigger = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", cron_trigger(self.expression, self.timezone))

    def event_id(self, slot: datetime) -> str:
        return f"cron:{self.name}:{iso(slot)}"


class Scheduler:
    """Fires each job's slots; `run()` until `stop()`."""

    def __init__(
        self,
        instances: Instances,
        kv: KeyValue,
        jobs: list[Job],
        catchup: timedelta,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.instances = instances
        self.kv = kv
        self.jobs = jobs
        self.catchup = catchup
        self.clock = clock
        self._stop = asyncio.Event()
        self.fired: list[tuple[str, str]] = []  # (job, slot) fired by this process
        m = metrics()
        for job in jobs:  # every series from 0, so the first miss shows in increase()
            m.cron_fired.labels(job.name)
            m.cron_missed.labels(job.name)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for job in self.jobs:
                group.create_task(self._run_job(job))

    # -- one job ---------------------------------------------------------------------

    async def _run_job(self, job: Job) -> None:
        last = await self.catch_up(job)
        cursor = max(last, self.clock()) if last is not None else self.clock()
        slot = next_slot(job.trigger, cursor)
        await self._record(job, None, 0, slot)
        while not self._stop.is_set():
            wait = (slot - self.clock()).total_seconds()
            if wait > 0:
                # Short naps follow the wall clock (NTP steps, a suspended laptop).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), min(wait, 1.0))
                continue
            if self.clock() - slot > self.catchup:
                slot = await self._skip_behind(job, slot)
                continue
            try:
                await self.fire(job, slot)
            except (nats.errors.Error, OSError, TimeoutError) as exc:
                # NATS away: try the same slot again (the same event id, so at most one
                # event), until it is older than the grace.
                log.warning(
                    "%s: slot %s not published yet (%s); retrying", job.name, iso(slot), exc
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), 1.0)
                continue
            slot = next_slot(job.trigger, slot)

    async def _skip_behind(self, job: Job, slot: datetime) -> datetime:
        """The loop fell behind by more than the grace: skip the slots beyond it."""
        now = self.clock()
        skipped = [slot, *slots_between(job.trigger, slot, now - self.catchup)]
        log.warning(
            "%s: %d slot(s) older than SCHEDULER_CATCHUP skipped (%s … %s)",
            job.name,
            len(skipped),
            iso(skipped[0]),
            iso(skipped[-1]),
        )
        metrics().cron_missed.labels(job.name).inc(len(skipped))
        await self._record(job, None, len(skipped), None)
        return next_slot(job.trigger, skipped[-1])

    async def catch_up(self, job: Job) -> datetime | None:
        """Fire the slots missed since the last one recorded, within the grace; return the
        last slot now fired (or recorded). A job never fired before catches up nothing."""
        state = await self._state(job)
        if state is None or state.last_slot is None:
            return None
        last = _parse(state.last_slot)
        now = self.clock()
        missed = slots_between(job.trigger, last, now, limit=MAX_CATCH_UP * 10)
        due = [s for s in missed if now - s <= self.catchup][-MAX_CATCH_UP:]
        skipped = len(missed) - len(due)
        if skipped:
            log.warning(
                "%s: %d missed slot(s) older than SCHEDULER_CATCHUP (%s) not fired, from %s",
                job.name,
                skipped,
                self.catchup,
                iso(missed[0]),
            )
            metrics().cron_missed.labels(job.name).inc(skipped)
            await self._record(job, None, skipped, None)
        for slot in due:
            log.info("%s: catching up missed slot %s", job.name, iso(slot))
            await self.fire(job, slot)
        return due[-1] if due else (missed[-1] if missed else last)

    async def fire(self, job: Job, slot: datetime) -> None:
        event = EventEnvelope(
            name=job.event, data={}, id=job.event_id(slot), ts=int(slot.timestamp() * 1000)
        )
        [(internal, started)] = await self.instances.send([event])
        self.fired.append((job.name, iso(slot)))
        metrics().cron_fired.labels(job.name).inc()
        log.info(
            "%s: fired slot %s (event %s, %d workflow(s))",
            job.name,
            iso(slot),
            internal,
            len(started),
        )
        await self._record(job, slot, 0, next_slot(job.trigger, slot))

    # -- the KV record ---------------------------------------------------------------

    async def _state(self, job: Job) -> ScheduleState | None:
        try:
            entry = await self.kv.get(job.name)
        except nats.js.errors.KeyNotFoundError:
            return None
        return msgspec.json.decode(entry.value, type=ScheduleState) if entry.value else None

    async def _record(
        self, job: Job, slot: datetime | None, skipped: int, next_fire: datetime | None
    ) -> None:
        """Advance the job's record (never backwards): compare-and-set against replicas."""
        for _ in range(20):
            try:
                entry = await self.kv.get(job.name)
                revision: int | None = entry.revision
                state = msgspec.json.decode(entry.value or b"{}", type=ScheduleState)
            except (nats.js.errors.KeyNotFoundError, msgspec.ValidationError):
                revision, state = None, None
            last = state.last_slot if state else None
            if slot is not None and (last is None or iso(slot) > last):
                last = iso(slot)
            new_next = iso(next_fire) if next_fire is not None else (state and state.next_fire)
            if last and (not new_next or new_next <= last):
                new_next = iso(next_slot(job.trigger, _parse(last)))
            record = ScheduleState(
                job=job.name,
                expression=job.expression,
                timezone=job.timezone,
                event=job.event,
                last_slot=last,
                next_fire=new_next or None,
                skipped=(state.skipped if state else 0) + skipped,
                updated_at=iso(self.clock()),
            )
            data = msgspec.json.encode(record)
            try:
                if revision is None:
                    await self.kv.create(job.name, data)
                else:
                    await self.kv.update(job.name, data, last=revision)
                return
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # another replica wrote first: read again
        log.warning("%s: schedule record not updated (kept losing races)", job.name)
