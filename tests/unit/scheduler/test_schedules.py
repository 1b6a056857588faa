"""Cron expressions mean what crontab means (Monday is 1), in the job's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.scheduler.__main__ import SchedulerSettings
from shared.cli.ops import schedules_table as table
from shared.errors import ConfigError
from shared.schedules import cron_trigger, next_slot, slots_between

TUESDAY = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # 1 December 2026 is a Tuesday


def test_weekly_summary_is_monday_nine_utc_not_tuesday():
    """`0 9 * * 1` is Monday 09:00 (APScheduler 3 alone would read 1 as Tuesday)."""
    slot = next_slot(cron_trigger("0 9 * * 1"), TUESDAY)
    assert slot == datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    assert slot.weekday() == 0


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 6 * * *", datetime(2026, 12, 2, 6, 0, tzinfo=UTC)),
        ("30 8 * * 0", datetime(2026, 12, 6, 8, 30, tzinfo=UTC)),  # Sunday
        ("30 8 * * 7", datetime(2026, 12, 6, 8, 30, tzinfo=UTC)),  # Sunday again
        ("0 12 * * 1-5", datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),  # weekdays
        ("0 12 * * 6,0", datetime(2026, 12, 5, 12, 0, tzinfo=UTC)),  # weekend
        ("*/15 * * * *", datetime(2026, 12, 1, 10, 15, tzinfo=UTC)),
        ("5 * * * * *", datetime(2026, 12, 1, 10, 0, 5, tzinfo=UTC)),  # seconds first
    ],
)
def test_expressions(expression, expected):
    """Crontab fields, weekday numbers, lists, ranges, steps and a seconds field."""
    assert next_slot(cron_trigger(expression), TUESDAY) == expected


def test_time_zone_per_job():
    """09:00 in Berlin is 08:00 UTC in winter."""
    slot = next_slot(cron_trigger("0 9 * * 1", "Europe/Berlin"), TUESDAY)
    assert slot.astimezone(UTC) == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert slot.tzinfo == ZoneInfo("Europe/Berlin")


def test_slots_between_is_half_open():
    """(after, until]: the slot at `after` is not repeated, the one at `until` counts."""
    hourly = cron_trigger("0 * * * *")
    slots = slots_between(hourly, TUESDAY, TUESDAY.replace(hour=13))
    assert [s.hour for s in slots] == [11, 12, 13]


@pytest.mark.parametrize(
    ("expression", "zone"),
    [
        ("0 9 * *", "UTC"),
        ("0 25 * * *", "UTC"),
        ("0 9 * * 8", "UTC"),
        ("0 9 * * 1; rm -rf /", "UTC"),
        ("0 9 * * 1", "Mars/Olympus"),
    ],
)
def test_bad_expressions_are_config_errors(expression, zone):
    """A malformed expression or unknown zone stops the scheduler with a clear message."""
    with pytest.raises(ConfigError):
        cron_trigger(expression, zone)


def test_settings_override_and_defaults():
    """Defaults are the SPEC's crons in UTC; each is overridable."""
    jobs = {j.name: j for j in SchedulerSettings().jobs()}
    assert (jobs["weekly-summary"].expression, jobs["weekly-summary"].event) == (
        "0 9 * * 1",
        "cron/weekly-summary",
    )
    assert jobs["daily-discovery"].expression == "0 6 * * *"
    custom = SchedulerSettings(daily_discovery_cron="0 7 * * *", daily_discovery_tz="Asia/Tokyo")
    daily = {j.name: j for j in custom.jobs()}["daily-discovery"]
    assert (daily.expression, daily.timezone) == ("0 7 * * *", "Asia/Tokyo")
    assert daily.event_id(datetime(2026, 12, 1, 22, 0, tzinfo=UTC)) == (
        "cron:daily-discovery:2026-12-01T22:00:00Z"
    )


def test_cli_table():
    """`howlerhire schedules` prints one aligned row per job, '-' for what is unknown."""
    text = table(
        [
            {"job": "weekly-summary", "expression": "0 9 * * 1", "timezone": "UTC",
             "lastSlot": "2026-11-30T09:00:00Z", "nextFire": "2026-12-07T09:00:00Z"},
            {"job": "daily-discovery", "expression": "0 6 * * *", "timezone": "UTC"},
        ]
    )  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == [
        "job",
        "expression",
        "tz",
        "last",
        "slot",
        "fired",
        "next",
        "fire",
        "skipped",
    ]
    assert "2026-12-07T09:00:00Z" in lines[1] and lines[2].count(" - ") >= 1
