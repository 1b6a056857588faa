"""Job boards: RemoteOK's JSON API and WeWorkRemotely's RSS feeds → normalised Jobs.

RemoteOK: the first array element is a legal notice, not a job; two schemas are in the
wild (the current one with salary_min/max and integer epochs, a legacy one with string
epochs and no salaries), and the API refuses requests without a User-Agent.
WeWorkRemotely: RSS through feedparser; titles are "Company: Position", descriptions are
entity-escaped HTML, `<type>`/`<region>` (and newer `<country>`/`<skills>`) are optional.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from shared.errors import UpstreamError
from shared.http import raise_for_status
from shared.sources.jobs import Job, SourceResult, fix_mojibake, html_to_text, matches_keywords

__all__ = ["BoardSettings", "RemoteOK", "WeWorkRemotely", "parse_remoteok", "parse_wwr_feed"]

log = logging.getLogger(__name__)

MAX_FEED_BYTES = 5 * 1024 * 1024
DEFAULT_WWR_FEEDS = (
    "https://weworkremotely.com/categories/remote-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-back-end-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-full-stack-programming-jobs.rss",
    "https://weworkremotely.com/categories/remote-devops-sysadmin-jobs.rss",
)


class BoardSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Env: REMOTEOK_API_URL, WWR_FEED_URLS (comma-separated)."""

    remoteok_api_url: str = "https://remoteok.com/api"
    wwr_feed_urls: str = ",".join(DEFAULT_WWR_FEEDS)

    @property
    def wwr_feeds(self) -> list[str]:
        return [url.strip() for url in self.wwr_feed_urls.split(",") if url.strip()]


# ---- RemoteOK -----------------------------------------------------------------------------


class RemoteOK:
    """The RemoteOK JSON API over the shared httpx client (which sends our User-Agent)."""

    source = "remoteok"

    def __init__(self, settings: BoardSettings, client: httpx.AsyncClient) -> None:
        self._url = settings.remoteok_api_url
        self._client = client

    async def search(self, keywords: Iterable[str] = ()) -> SourceResult:
        """Every job in the feed matching any keyword (title, description, tags)."""
        body = await _fetch(self._client, self._url, "RemoteOK", accept="application/json")
        try:
            items = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise UpstreamError(f"RemoteOK: the answer is not JSON: {body[:80]!r}") from exc
        jobs = parse_remoteok(items)
        keywords = list(keywords)
        return SourceResult(
            source=self.source, jobs=tuple(j for j in jobs if matches_keywords(j, keywords))
        )


def parse_remoteok(items: Any) -> list[Job]:
    """Jobs from a decoded RemoteOK API answer; notices and unusable entries skipped."""
    if not isinstance(items, list):
        raise UpstreamError("RemoteOK: expected a JSON array")
    jobs: list[Job] = []
    for item in items:
        if not isinstance(item, dict) or "legal" in item or not item.get("id"):
            continue  # the legal notice (first element), or junk
        title = _text(item.get("position") or item.get("title"))
        url = _text(item.get("url")) or _text(item.get("apply_url"))
        if not title or not url:
            continue
        tags = tuple(_text(t) for t in item.get("tags") or () if isinstance(t, str) and t.strip())
        location = _text(item.get("location")).strip(" ,") or None
        jobs.append(
            Job(
                source="remoteok",
                external_id=str(item["id"]),
                title=title,
                company=_text(item.get("company")),
                url=url,
                description=html_to_text(_text(item.get("description"))),
                tags=tags,
                location=location,
                salary_min=_salary(item.get("salary_min")),
                salary_max=_salary(item.get("salary_max")),
                posted_at=_posted(item.get("epoch"), item.get("date")),
                apply_url=_text(item.get("apply_url")) or None,
            )
        )
    return jobs


def _text(value: Any) -> str:
    return fix_mojibake(value).strip() if isinstance(value, str) else ""


def _salary(value: Any) -> int | None:
    try:
        amount = int(float(value))
    except (TypeError, ValueError):
        return None
    return amount if amount > 0 else None  # RemoteOK writes 0 for "not stated"


def _posted(epoch: Any, date: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(epoch), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        pass
    if isinstance(date, str):
        try:
            return datetime.fromisoformat(date)
        except ValueError:
            return None
    return None


# ---- WeWorkRemotely ------------------------------------------------------------------------


class WeWorkRemotely:
    """WeWorkRemotely category RSS feeds, fetched concurrently."""

    source = "weworkremotely"

    def __init__(self, settings: BoardSettings, client: httpx.AsyncClient) -> None:
        self._feeds = settings.wwr_feeds
        self._client = client

    async def search(self, keywords: Iterable[str] = ()) -> SourceResult:
        """Jobs from every feed matching any keyword; deduplicated by URL.

        A feed that fails is named in `errors`; only when every feed fails is an error raised.
        """
        keywords = list(keywords)
        results = await asyncio.gather(
            *(self._feed(url) for url in self._feeds), return_exceptions=True
        )
        jobs: dict[str, Job] = {}
        errors: list[str] = []
        first_error: BaseException | None = None
        for url, result in zip(self._feeds, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # CancelledError and friends propagate
                first_error = first_error or result
                errors.append(f"{url}: {result}")
                log.warning("WeWorkRemotely feed failed: %s: %s", url, result)
                continue
            for job in result:
                if matches_keywords(job, keywords):
                    jobs.setdefault(job.url, job)
        if first_error is not None and len(errors) == len(self._feeds):
            raise first_error
        return SourceResult(source=self.source, jobs=tuple(jobs.values()), errors=tuple(errors))

    async def _feed(self, url: str) -> list[Job]:
        body = await _fetch(
            self._client,
            url,
            "WeWorkRemotely",
            accept="application/rss+xml, application/xml, text/xml",
        )
        return await asyncio.to_thread(parse_wwr_feed, body)


def parse_wwr_feed(body: bytes) -> list[Job]:
    """Jobs from a WWR RSS document (feedparser unescapes the HTML descriptions)."""
    import feedparser

    feed = feedparser.parse(body)
    if feed.bozo and not feed.entries:
        raise UpstreamError(
            f"WeWorkRemotely: not an RSS feed ({type(feed.bozo_exception).__name__})"
        )
    jobs: list[Job] = []
    for entry in feed.entries:
        raw_title = _text(entry.get("title"))
        link = _text(entry.get("link"))
        if not raw_title or not link:
            continue
        company, sep, position = raw_title.partition(": ")
        if not sep:
            company, position = "", raw_title
        description_html = entry.get("summary") or ""
        if entry.get("content"):
            description_html = entry["content"][0].get("value") or description_html
        tags = [t.get("term", "") for t in entry.get("tags") or [] if t.get("term")]
        skills = _text(entry.get("skills"))
        if skills:
            tags += [s.strip() for s in re.split(r"[,;]", skills) if s.strip()]
        location = ", ".join(
            x
            for x in (
                _text(entry.get("region")),
                _text(entry.get("country")),
                _text(entry.get("state")),
            )
            if x
        ) or _headquarters(description_html)
        published = entry.get("published_parsed")
        jobs.append(
            Job(
                source="weworkremotely",
                external_id=_text(entry.get("id")) or link,
                title=position.strip(),
                company=company.strip(),
                url=link,
                description=_strip_wwr_header(html_to_text(description_html)),
                tags=tuple(dict.fromkeys(tags)),
                location=location,
                posted_at=_struct_time_utc(published),
                employment_type=_text(entry.get("type")) or None,
            )
        )
    return jobs


def _struct_time_utc(value: Any) -> datetime | None:
    """feedparser's `*_parsed` (a UTC time.struct_time) as an aware datetime."""
    if not value:
        return None
    year, month, day, hour, minute, second = tuple(value)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _headquarters(markup: str) -> str | None:
    match = re.search(r"Headquarters:\s*</strong>\s*([^<]+)", markup)
    return match.group(1).strip() if match else None


def _strip_wwr_header(text: str) -> str:
    """Drop the "Headquarters: … URL: …" block WWR puts before the real description."""
    lines = text.splitlines()
    out = [line for line in lines if not re.match(r"^(Headquarters|URL):", line.strip())]
    return "\n".join(out).strip()


async def _fetch(client: httpx.AsyncClient, url: str, name: str, *, accept: str) -> bytes:
    """GET with a size cap; errors mapped (429 → RetryAfterError, 4xx → NonRetryable)."""
    try:
        async with client.stream(
            "GET", url, headers={"Accept": accept}, follow_redirects=False
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise_for_status(response, name)
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > MAX_FEED_BYTES:
                    raise UpstreamError(f"{name}: the answer is larger than {MAX_FEED_BYTES} bytes")
                chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise UpstreamError(f"{name}: the request timed out") from exc
    except httpx.TransportError as exc:
        raise UpstreamError(f"{name}: could not connect ({type(exc).__name__})") from exc
    return b"".join(chunks)
