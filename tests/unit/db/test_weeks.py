"""Week boundaries: ISO weeks in UTC, half-open, computed in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.weeks import current_week, previous_week, week_start

MONDAY = datetime(2026, 1, 12, tzinfo=UTC)


async def test_week_starts_on_monday_midnight_utc() -> None:
    """Any instant of a week maps to its Monday 00:00 UTC, the Monday itself included."""
    assert week_start(MONDAY) == MONDAY
    assert week_start(MONDAY + timedelta(days=3, hours=7)) == MONDAY
    assert week_start(MONDAY + timedelta(days=7) - timedelta(microseconds=1)) == MONDAY
    assert week_start(MONDAY - timedelta(microseconds=1)) == MONDAY - timedelta(days=7)


async def test_offsets_are_converted_to_utc_first() -> None:
    """Monday 01:00 at UTC+2 is still Sunday in UTC, so it belongs to the week before."""
    berlin_summer = timezone(timedelta(hours=2))
    local_monday = datetime(2026, 1, 12, 1, 0, tzinfo=berlin_summer)
    assert week_start(local_monday) == MONDAY - timedelta(days=7)
    assert week_start(local_monday).tzinfo == UTC


async def test_naive_datetimes_are_refused() -> None:
    """A datetime without a zone is an error, not a guess."""
    with pytest.raises(ValueError, match="naive"):
        week_start(datetime(2026, 1, 12))  # noqa: DTZ001


async def test_previous_week_is_the_full_week_before() -> None:
    """On Monday 09:00 (the summary cron) the previous week is last Mon 00:00 to today 00:00."""
    window = previous_week(MONDAY + timedelta(hours=9))
    assert (window.start, window.end) == (MONDAY - timedelta(days=7), MONDAY)
    assert window.start in window
    assert window.end not in window
    assert window.end - timedelta(microseconds=1) in window
    assert window.label == "2026-W02"
    assert current_week(MONDAY).label == "2026-W03"


async def test_week_labels_follow_iso_years() -> None:
    """The week of 2026-12-28 is ISO week 53 of 2026; 2027-01-04 starts 2027-W01."""
    assert current_week(datetime(2026, 12, 31, tzinfo=UTC)).label == "2026-W53"
    assert current_week(datetime(2027, 1, 3, tzinfo=UTC)).label == "2026-W53"
    assert current_week(datetime(2027, 1, 4, tzinfo=UTC)).label == "2027-W01"


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 5),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=datetime(2200, 1, 1),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]
        ),
    )
)
def test_every_instant_falls_in_its_week(instant: datetime) -> None:
    """For any aware instant: its week starts on a Monday at 00:00 UTC and contains it."""
    window = current_week(instant)
    assert window.start.weekday() == 0
    assert (window.start.hour, window.start.minute, window.start.microsecond) == (0, 0, 0)
    assert instant in window
    assert window.end - window.start == timedelta(days=7)
    assert previous_week(instant).end == window.start
