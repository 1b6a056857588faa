"""Cron schedules: parsing expressions into APScheduler 3 triggers, and their shared state.

The scheduler keeps one record per job in the KV bucket `<ns>_schedules` (expression,
time zone, last slot fired, next fire time, slots skipped); the gateway's `GET
/schedules` and `howlerhire schedules` read it.

Expressions are standard 5-field crontab (minute hour day month weekday, weekday 0 or 7
= Sunday), or 6 fields with seconds first (for tests). APScheduler 3 numbers weekdays
from Monday = 0, so crontab weekday numbers are translated to names: `0 9 * * 1` is
Monday 09:00, as cron (and the SPEC) mean it, not Tuesday.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import nats.js.errors
from apscheduler.triggers.cron import CronTrigger
from nats.js.client import JetStreamContext

from shared.errors import ConfigError

_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScheduleState(msgspec.Struct, kw_only=True, omit_defaults=True, rename="camel"):
    """One job as the scheduler last saw it."""

    job: str
    expression: str
    timezone: str
    event: str
    last_slot: str | None = None  # ISO UTC of the last slot fired
    next_fire: str | None = None  # ISO UTC
    skipped: int = 0  # missed slots not fired (beyond SCHEDULER_CATCHUP), in total
    updated_at: str | None = None


def bucket_name(namespace: str) -> str:
    return f"{namespace}_schedules"


def _weekday(field: str) -> str:
    def name(token: str) -> str:
        if not token.isdigit():
            return token
        number = int(token)
        if number > 7:
            raise ConfigError(f"weekday {number} is out of range (0-7)")
        return _DAYS[number]

    parts = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        base = "-".join(name(t) for t in base.split("-"))
        parts.append(base + slash + step)
    return ",".join(parts)


def cron_trigger(expression: str, timezone: str = "UTC") -> CronTrigger:
    """An APScheduler 3 trigger for a crontab expression; ConfigError if it is not one."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {timezone!r}") from None
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ConfigError(f"cron expression {expression!r} needs 5 fields (or 6 with seconds)")
    second = fields.pop(0) if len(fields) == 6 else "0"
    minute, hour, day, month, weekday = fields
    if re.search(r"[^0-9a-zA-Z*/,\-]", "".join(fields) + second):
        raise ConfigError(f"cron expression {expression!r} has unexpected characters")
    try:
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_weekday(weekday),
            timezone=zone,
        )
    except ValueError as exc:
        raise ConfigError(f"cron expression {expression!r}: {exc}") from None


def next_slot(trigger: CronTrigger, after: datetime) -> datetime:
    """The first fire time strictly after `after`."""
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    if fire is None:  # a cron trigger without an end date always has a next time
        raise ConfigError("the schedule has no next fire time")
    return fire  # type: ignore[no-any-return]


def slots_between(
    trigger: CronTrigger, after: datetime, until: datetime, limit: int = 10_000
) -> list[datetime]:
    """Fire times in (after, until], oldest first (at most `limit`, the newest kept)."""
    slots: list[datetime] = []
    current = after
    while True:
        current = next_slot(trigger, current)
        if current > until:
            return slots
        slots.append(current)
        if len(slots) > limit:
            del slots[0]


def iso(instant: datetime) -> str:
    """ISO 8601 UTC with a Z, seconds precision: the form slot ids use."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def read_schedules(js: JetStreamContext, namespace: str) -> list[ScheduleState]:
    """Every job the scheduler has recorded, by name (empty if it never ran)."""
    try:
        kv = await js.key_value(bucket_name(namespace))
    except (nats.js.errors.BucketNotFoundError, nats.js.errors.NotFoundError):
        return []
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:
        return []
    states = []
    for key in sorted(keys):
        entry = await kv.get(key)
        if entry.value:
            states.append(msgspec.json.decode(entry.value, type=ScheduleState))
    return states
