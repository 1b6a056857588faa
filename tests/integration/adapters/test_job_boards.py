"""Every board fetched from a local server speaking its wire format: listings, unknown
boards, and polite fetching (User-Agent, Retry-After, one request at a time per host,
timeouts, size and shape errors)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from shared.errors import ConfigError, NonRetryableError, RetryAfterError
from shared.sources import (
    BoardMalformedError,
    BoardNotFoundError,
    BoardSettings,
    BoardUnavailableError,
    PoliteFetcher,
    configured_boards,
)
from tests.support.fakes import FAKES, RunningFake
from tests.support.fakes.boards import REMOTEOK_LEGACY

KINDS = (
    "remoteok",
    "weworkremotely",
    "remotive",
    "arbeitnow",
    "himalayas",
    "greenhouse",
    "lever",
    "ashby",
)


@pytest.fixture(scope="module")
def boards(fixtures_dir: Path) -> Iterator[dict[str, RunningFake]]:
    fakes = {kind: RunningFake(FAKES[kind](fixtures_dir)).start() for kind in KINDS}
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.stop()


@pytest.fixture
def fakes(boards: dict[str, RunningFake]) -> dict[str, RunningFake]:
    for fake in boards.values():
        fake.control.reset()
    return boards


def settings(fakes: dict[str, RunningFake], sources: str, extra_feed: str = "") -> BoardSettings:
    wwr = fakes["weworkremotely"]
    return BoardSettings(
        discovery_sources=sources,
        remoteok_api_url=f"{fakes['remoteok'].url}/api",
        wwr_feed_urls=",".join(wwr.app.feed_urls()) + extra_feed,  # type: ignore[attr-defined]
        remotive_api_url=f"{fakes['remotive'].url}/api/remote-jobs",
        arbeitnow_api_url=f"{fakes['arbeitnow'].url}/api/job-board-api",
        himalayas_api_url=f"{fakes['himalayas'].url}/jobs/api",
        greenhouse_api_url=fakes["greenhouse"].url,
        lever_api_url=fakes["lever"].url,
        ashby_api_url=fakes["ashby"].url,
    )


ALL = (
    "remoteok,weworkremotely,remotive,arbeitnow,himalayas,greenhouse:stripe,lever:matchgroup,"
    "ashby:ramp,ashby:Etched"
)


async def test_every_board_through_its_fake(fakes, http_client) -> None:
    """Each configured board fetches and parses its recorded listing, with our User-Agent."""
    fetcher = PoliteFetcher(http_client)
    counts = {}
    for board in configured_boards(settings(fakes, ALL)):
        listing = await board.fetch(fetcher)
        counts[board.name] = len(listing.postings)
        assert not listing.warnings
    assert counts == {
        "remoteok": 59,
        "weworkremotely": 107,  # 114 items, 7 in two categories
        "remotive": 35,
        "arbeitnow": 5,
        "himalayas": 3,
        "greenhouse:stripe": 40,
        "lever:matchgroup": 40,
        "ashby:ramp": 40,
        "ashby:Etched": 10,
    }
    for fake in fakes.values():
        for request in fake.control.requests():
            assert request["headers"]["user-agent"].startswith("HowlerHire")
    [greenhouse] = fakes["greenhouse"].control.requests()
    assert greenhouse["path"] == "/v1/boards/stripe/jobs" and greenhouse["query"] == "content=true"


async def test_remoteok_legacy_schema_through_the_fake(fakes, http_client) -> None:
    """The 2021 schema served live parses too."""
    fakes["remoteok"].control.script(fixture=REMOTEOK_LEGACY)
    [board] = configured_boards(settings(fakes, "remoteok"))
    listing = await board.fetch(PoliteFetcher(http_client))
    assert len(listing.postings) == 60 and all(p.salary is None for p in listing.postings)


@pytest.mark.parametrize("entry", ["greenhouse:not-real-inc", "lever:netflix", "ashby:nobody"])
async def test_unknown_company_board_is_a_clear_error(fakes, http_client, entry) -> None:
    """An unknown Greenhouse/Lever/Ashby board is BoardNotFoundError naming it."""
    [board] = configured_boards(settings(fakes, entry))
    with pytest.raises(BoardNotFoundError) as caught:
        await board.fetch(PoliteFetcher(http_client))
    assert entry.split(":")[1] in str(caught.value)
    assert isinstance(caught.value, NonRetryableError)


async def test_unknown_board_legacy_and_200_answers(fakes, http_client) -> None:
    """Greenhouse's legacy 400 and Lever's 200 "Document not found" also mean no board."""
    fakes["greenhouse"].control.script(replay="greenhouse/greenhouse_error_400_unknown_board_2013")
    fakes["lever"].control.script(status=200, fixture="lever/lever_error_document_not_found.json")
    fetcher = PoliteFetcher(http_client)
    for board in configured_boards(settings(fakes, "greenhouse:old,lever:netflix")):
        with pytest.raises(BoardNotFoundError):
            await board.fetch(fetcher)


async def test_errors_are_classified(fakes, http_client) -> None:
    """429 → RetryAfterError with its delay; 5xx → unavailable; HTML → malformed."""
    [board] = configured_boards(settings(fakes, "remotive"))
    fake = fakes["remotive"].control
    fake.script(status=429, body="slow down", headers={"retry-after": "30"})
    with pytest.raises(RetryAfterError) as caught:
        await board.fetch(PoliteFetcher(http_client))
    assert caught.value.delay == timedelta(seconds=30)
    fake.script(status=502, body="bad gateway")
    with pytest.raises(BoardUnavailableError, match="502"):
        await board.fetch(PoliteFetcher(http_client))
    fake.script(status=200, body="<html>maintenance</html>")
    with pytest.raises(BoardMalformedError, match="not JSON"):
        await board.fetch(PoliteFetcher(http_client))
    fake.script(status=200, json={"jobs": "nope"})
    with pytest.raises(BoardMalformedError):
        await board.fetch(PoliteFetcher(http_client))


async def test_retry_after_is_honoured_for_the_host(fakes, http_client) -> None:
    """After a 503 with Retry-After 1, the next request to that host waits at least 1 s."""
    [board] = configured_boards(settings(fakes, "arbeitnow"))
    fetcher = PoliteFetcher(http_client)
    fakes["arbeitnow"].control.script(status=503, body="busy", headers={"retry-after": "1"})
    with pytest.raises(RetryAfterError):
        await board.fetch(fetcher)
    listing = await board.fetch(fetcher)
    assert len(listing.postings) == 5
    first, second = fakes["arbeitnow"].control.requests()
    assert second["time"] - first["time"] >= 1.0


async def test_one_request_at_a_time_per_host(fakes, http_client) -> None:
    """Three concurrent fetches of one host never overlap: each starts after the last ends."""
    fakes["himalayas"].control.script(
        times=3,
        delay=0.3,
        fixture="himalayas/himalayas_jobs_api_2026-08-15_3jobs_envelope_stripped.json",
    )
    [board] = configured_boards(settings(fakes, "himalayas"))
    fetcher = PoliteFetcher(http_client)
    await asyncio.gather(*(board.fetch(fetcher) for _ in range(3)))
    times = sorted(r["time"] for r in fakes["himalayas"].control.requests())
    assert len(times) == 3
    assert all(later - earlier >= 0.3 for earlier, later in itertools.pairwise(times))


async def test_a_slow_board_times_out(fakes, http_client) -> None:
    """A board slower than the fetch timeout is unavailable, not a hung run."""
    fakes["remoteok"].control.script(delay=3, body="[]")
    [board] = configured_boards(settings(fakes, "remoteok"))
    with pytest.raises(BoardUnavailableError, match="within 1 s"):
        await board.fetch(PoliteFetcher(http_client, timeout=1.0))


async def test_wwr_one_feed_failing_is_a_warning(fakes, http_client) -> None:
    """A feed that 404s is a warning while the others' postings come back; all failing
    raises."""
    extra = f",{fakes['weworkremotely'].url}/categories/missing.rss"
    [board] = configured_boards(settings(fakes, "weworkremotely", extra))
    listing = await board.fetch(PoliteFetcher(http_client))
    assert len(listing.warnings) == 1 and "missing.rss" in listing.warnings[0]
    assert len(listing.postings) == 107
    fakes["weworkremotely"].control.script(times=4, status=503, body="down")
    with pytest.raises(BoardUnavailableError):
        await board.fetch(PoliteFetcher(http_client))


async def test_a_bare_client_is_refused_by_remoteok(fakes) -> None:
    """RemoteOK (and its fake) refuse httpx's default User-Agent."""
    [board] = configured_boards(settings(fakes, "remoteok"))
    async with httpx.AsyncClient() as bare:
        with pytest.raises(NonRetryableError, match="403"):
            await board.fetch(PoliteFetcher(bare))


@pytest.mark.parametrize(
    ("sources", "message"),
    [
        ("remoteok,monster", "unknown board 'monster'"),
        ("greenhouse", "greenhouse needs a company board"),
        ("remotive:acme", "remotive takes no company"),
        ("lever:../etc", "is not a board name"),
        (" , ", "names no board"),
    ],
)
def test_bad_discovery_sources(sources: str, message: str) -> None:
    """DISCOVERY_SOURCES mistakes are ConfigErrors naming the entry."""
    with pytest.raises(ConfigError, match=message):
        configured_boards(BoardSettings(discovery_sources=sources))


def test_duplicates_dropped_and_order_kept() -> None:
    """A board named twice is read once; the order is the operator's."""
    boards = configured_boards(
        BoardSettings(discovery_sources="remotive,greenhouse:stripe,remotive")
    )
    assert [b.name for b in boards] == ["remotive", "greenhouse:stripe"]
