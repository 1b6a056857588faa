"""Week boundaries in UTC: the one place that says when a week starts and ends.

A week is an ISO week: it starts on Monday at 00:00 UTC and ends, exclusive, at the next
Monday 00:00 UTC. Usage limits count from `week_start(now)`; the weekly summary covers
`previous_week(now)`. Naive datetimes are refused rather than guessed at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

WEEK = timedelta(days=7)


class Window(msgspec.Struct, frozen=True, kw_only=True):
    """A half-open UTC time window [start, end)."""

    start: datetime
    end: datetime

    def __contains__(self, instant: object) -> bool:
        if not isinstance(instant, datetime):
            return False
        return self.start <= _utc(instant) < self.end

    @property
    def label(self) -> str:
        """The ISO week of `start`, e.g. ``2026-W03``: stable across runs, fit for keys."""
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


def _utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant.isoformat()}: pass an aware datetime")
    return instant.astimezone(UTC)


def week_start(instant: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week that contains `instant`."""
    utc = _utc(instant)
    midnight = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight - timedelta(days=midnight.weekday())


def current_week(instant: datetime) -> Window:
    """The week that contains `instant`: [Monday 00:00, next Monday 00:00) UTC."""
    start = week_start(instant)
    return Window(start=start, end=start + WEEK)


def previous_week(instant: datetime) -> Window:
    """The last full week before the one containing `instant`."""
    end = week_start(instant)
    return Window(start=end - WEEK, end=end)
