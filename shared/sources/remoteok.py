"""RemoteOK's JSON API: an array whose first element is a legal notice, not a job.

Two schemas are in the wild: the current one (integer `epoch`, `salary_min/max`, 0 for
"not stated") and a legacy one (string `epoch`, no salaries, sometimes an empty company
or a one-character description). The API refuses requests without a real User-Agent.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.sources.fetch import BoardMalformedError, PoliteFetcher
from shared.sources.normalise import (
    canonical_url,
    clean_text,
    html_to_text,
    parse_posted,
    salary_from_amounts,
)
from shared.sources.postings import Posting
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["RemoteOK", "parse_remoteok"]


@register("remoteok")
class RemoteOK:
    kind: ClassVar[str] = "remoteok"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        self.name = "remoteok"
        self.url = settings.remoteok_api_url

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, "RemoteOK")
        return Listing(postings=parse_remoteok(decode_json(body, "RemoteOK")))


def parse_remoteok(items: Any) -> list[Posting]:
    """Postings from a decoded RemoteOK answer; the notice and unusable entries skipped."""
    if not isinstance(items, list):
        raise BoardMalformedError("RemoteOK: expected a JSON array")
    postings: list[Posting] = []
    for item in items:
        if not isinstance(item, dict) or "legal" in item or not item.get("id"):
            continue
        title = clean_text(item.get("position") or item.get("title"))
        url = canonical_url(item.get("url")) or canonical_url(item.get("apply_url"))
        if not title or not url:
            continue
        tags = tuple(dict.fromkeys(t for t in (clean_text(x) for x in item.get("tags") or ()) if t))
        location = clean_text(item.get("location")) or None
        logo = canonical_url(item.get("company_logo")) or canonical_url(item.get("logo"))
        postings.append(
            Posting(
                source="remoteok",
                board="remoteok",
                external_id=str(item["id"]),
                title=title,
                company=clean_text(item.get("company")),
                url=url,
                apply_url=canonical_url(item.get("apply_url")) or None,
                description=html_to_text(item.get("description")),
                company_logo=logo or None,
                location=location,
                is_remote=True,  # every RemoteOK job is remote; location is where it hires
                salary=salary_from_amounts(item.get("salary_min"), item.get("salary_max"), "USD"),
                posted_at=parse_posted(item.get("epoch")) or parse_posted(item.get("date")),
                tags=tags,
            )
        )
    return postings
