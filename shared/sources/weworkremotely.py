"""WeWorkRemotely's category RSS feeds, through feedparser.

Titles are "Company: Position"; `<description>` is entity-escaped HTML that starts with
a logo `<img>` and a "Headquarters / URL" block; `<type>`, `<expires_at>`, `<region>`
and the newer `<country>`, `<state>`, `<skills>` are all optional. Several feeds are
read (one per category); a feed that fails is a warning unless every feed fails.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from shared.errors import UpstreamError, WorkflowError
from shared.sources.fetch import BoardMalformedError, PoliteFetcher
from shared.sources.normalise import canonical_url, clean_text, html_to_text, parse_posted
from shared.sources.postings import Posting
from shared.sources.registry import BoardSettings, Listing, register

__all__ = ["WeWorkRemotely", "parse_wwr_feed"]

log = logging.getLogger(__name__)
ACCEPT = "application/rss+xml, application/xml, text/xml"


@register("weworkremotely")
class WeWorkRemotely:
    kind: ClassVar[str] = "weworkremotely"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        self.name = "weworkremotely"
        self.feeds = settings.wwr_feeds

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        """Every feed in turn (they share one host); postings deduplicated by URL."""
        postings: dict[str, Posting] = {}
        warnings: list[str] = []
        last_error: UpstreamError | WorkflowError | None = None
        for url in self.feeds:
            try:
                body = await fetcher.get(url, "WeWorkRemotely", accept=ACCEPT)
                parsed = await asyncio.to_thread(parse_wwr_feed, body)
            except (UpstreamError, WorkflowError) as exc:
                # One category feed down is a warning; all of them down is the board down.
                last_error = exc
                warnings.append(f"{url}: {exc}")
                log.warning("WeWorkRemotely feed failed: %s: %s", url, exc)
                continue
            for posting in parsed:
                postings.setdefault(posting.url, posting)
        if not postings and last_error is not None:
            raise last_error
        return Listing(postings=list(postings.values()), warnings=tuple(warnings))


def parse_wwr_feed(body: bytes) -> list[Posting]:
    """Postings from one WWR RSS document."""
    import feedparser

    feed = feedparser.parse(body)
    if feed.bozo and not feed.entries:
        raise BoardMalformedError(
            f"WeWorkRemotely: not an RSS feed ({type(feed.bozo_exception).__name__})"
        )
    if not feed.entries and not feed.get("feed", {}).get("title"):
        raise BoardMalformedError("WeWorkRemotely: not an RSS feed (no channel)")
    postings: list[Posting] = []
    for entry in feed.entries:
        raw_title = clean_text(entry.get("title"))
        url = canonical_url(entry.get("link"))
        if not raw_title or not url:
            continue
        company, sep, position = raw_title.partition(": ")
        if not sep:
            company, position = "", raw_title
        markup = entry.get("summary") or ""
        if entry.get("content"):
            markup = entry["content"][0].get("value") or markup
        tags = [clean_text(t.get("term")) for t in entry.get("tags") or []]
        skills = clean_text(entry.get("skills"))
        if skills:
            tags += [s.strip() for s in re.split(r"[,;]", skills)]
        location = ", ".join(
            dict.fromkeys(
                x
                for x in (
                    clean_text(entry.get("region")),
                    clean_text(entry.get("country")),
                    clean_text(entry.get("state")),
                )
                if x
            )
        ) or _headquarters(markup)
        postings.append(
            Posting(
                source="weworkremotely",
                board="weworkremotely",
                external_id=clean_text(entry.get("id")) or url,
                title=clean_text(position),
                company=clean_text(company),
                url=url,
                description=_strip_header(html_to_text(markup)),
                company_logo=_logo(entry, markup),
                location=location or None,
                is_remote=True,
                posted_at=_struct_time_utc(entry.get("published_parsed"))
                or parse_posted(entry.get("published")),
                employment_type=clean_text(entry.get("type")) or None,
                tags=tuple(dict.fromkeys(t for t in tags if t)),
            )
        )
    return postings


def _struct_time_utc(value: Any) -> datetime | None:
    """feedparser's `*_parsed` (a UTC time.struct_time) as an aware datetime."""
    if not value:
        return None
    year, month, day, hour, minute, second = tuple(value)[:6]
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _logo(entry: Any, markup: str) -> str | None:
    for media in entry.get("media_content") or []:
        url = canonical_url(media.get("url"))
        if url:
            return url
    match = re.search(r"""<img[^>]+src=["']([^"']+)""", markup)
    return canonical_url(match.group(1)) or None if match else None


def _headquarters(markup: str) -> str | None:
    match = re.search(r"Headquarters:\s*</strong>\s*([^<]+)", markup)
    return clean_text(match.group(1)) or None if match else None


def _strip_header(text: str) -> str:
    """Drop the "Headquarters: … URL: …" lines WWR puts before the real description."""
    lines = text.splitlines()
    kept = [line for line in lines if not re.match(r"^(Headquarters|URL):", line.strip())]
    return "\n".join(kept).strip()
