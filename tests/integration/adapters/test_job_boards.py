"""RemoteOK and WeWorkRemotely against fakes serving the recorded API answer and RSS feeds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.sources import BoardSettings, RemoteOK, WeWorkRemotely
from tests.support.fakes import RunningFake
from tests.support.fakes.boards import REMOTEOK_LEGACY


def remoteok(fake: RunningFake, client: httpx.AsyncClient) -> RemoteOK:
    return RemoteOK(BoardSettings(remoteok_api_url=f"{fake.url}/api"), client)


def wwr(fake: RunningFake, client: httpx.AsyncClient, extra: str = "") -> WeWorkRemotely:
    urls = ",".join(fake.app.feed_urls()) + extra  # type: ignore[attr-defined]
    return WeWorkRemotely(BoardSettings(wwr_feed_urls=urls), client)


async def test_remoteok_current_schema(
    remoteok_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """The legal notice is skipped; salaries, epochs, tags and mojibake are normalised."""
    result = await remoteok(remoteok_fake, http_client).search()
    jobs = result.jobs
    assert len(jobs) == 59  # 60 entries, one with an empty position
    assert all(
        job.source == "remoteok" and job.url.startswith("https://remoteOK.com/") for job in jobs
    )
    assert sum(1 for job in jobs if job.salary_min) == 17
    assert all(job.salary_min is None or job.salary_min > 0 for job in jobs)
    assert all(job.posted_at and job.posted_at.tzinfo for job in jobs)
    assert not any("\u00e2\u0080" in job.description for job in jobs)
    assert not any("<p>" in job.description for job in jobs)
    assert remoteok_fake.control.last_request()["headers"]["user-agent"].startswith("HowlerHire")


async def test_remoteok_legacy_schema(
    remoteok_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """The 2021 schema (string epochs, no salaries, empty companies) parses too."""
    remoteok_fake.control.script(fixture=REMOTEOK_LEGACY)
    result = await remoteok(remoteok_fake, http_client).search()
    assert len(result.jobs) == 60
    assert all(job.salary_min is None and job.salary_max is None for job in result.jobs)
    assert result.jobs[0].posted_at == datetime.fromtimestamp(1611356746, tz=UTC)


async def test_remoteok_keyword_filter(
    remoteok_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """Keywords match title, description or tags, case-insensitively."""
    result = await remoteok(remoteok_fake, http_client).search(["ENGINEER"])
    assert result.jobs
    assert all(
        "engineer" in (j.title + j.description + " ".join(j.tags)).lower() for j in result.jobs
    )
    assert len(result.jobs) < 59


async def test_remoteok_needs_a_user_agent(remoteok_fake: RunningFake) -> None:
    """The fake, like RemoteOK, refuses httpx's default User-Agent: a bare client gets 403."""
    async with httpx.AsyncClient() as bare:
        with pytest.raises(NonRetryableError, match="403"):
            await remoteok(remoteok_fake, bare).search()


async def test_remoteok_errors(remoteok_fake: RunningFake, http_client: httpx.AsyncClient) -> None:
    """429 → RetryAfterError, 5xx and non-JSON → UpstreamError."""
    remoteok_fake.control.script(status=429, body="slow down", headers={"retry-after": "5"})
    with pytest.raises(RetryAfterError) as caught:
        await remoteok(remoteok_fake, http_client).search()
    assert caught.value.delay == timedelta(seconds=5)
    remoteok_fake.control.script(status=502, body="bad gateway")
    with pytest.raises(UpstreamError):
        await remoteok(remoteok_fake, http_client).search()
    remoteok_fake.control.script(body="<html>maintenance</html>")
    with pytest.raises(UpstreamError, match="not JSON"):
        await remoteok(remoteok_fake, http_client).search()


async def test_wwr_feeds(wwr_fake: RunningFake, http_client: httpx.AsyncClient) -> None:
    """All three feeds parse: "Company: Position" split, HTML unescaped, type/region kept."""
    result = await wwr(wwr_fake, http_client).search()
    assert not result.errors
    jobs = {job.url: job for job in result.jobs}
    assert len(jobs) == len(result.jobs) >= 100
    findox = next(j for j in result.jobs if j.company == "FinDox Inc")
    assert findox.title == "Senior C# and PostgreSQL Backend Developer"
    assert findox.employment_type == "Full-Time" and findox.location == "Anywhere in the World"
    assert "4+ years work experience with .NET" in findox.description
    assert "&lt;" not in findox.description and "<img" not in findox.description
    assert "Headquarters:" not in findox.description
    assert findox.posted_at == datetime(2022, 11, 7, 16, 20, 50, tzinfo=UTC)
    untyped = [j for j in result.jobs if j.tags == ("Full-Stack Programming",)]
    assert untyped and all(j.employment_type is None for j in untyped)


async def test_wwr_one_failing_feed_is_reported_not_fatal(
    wwr_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A feed that 404s is named in errors while the other feeds' jobs come back."""
    result = await wwr(
        wwr_fake, http_client, extra=f",{wwr_fake.url}/categories/missing.rss"
    ).search(["python"])
    assert len(result.errors) == 1 and "missing.rss" in result.errors[0]
    assert result.jobs


async def test_wwr_all_feeds_failing_raises(
    wwr_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """When every feed fails, the error is raised for the engine to retry."""
    wwr_fake.control.script(times=3, status=503, body="down")
    with pytest.raises(UpstreamError):
        await wwr(wwr_fake, http_client).search()
