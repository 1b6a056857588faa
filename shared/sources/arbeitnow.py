"""Arbeitnow's job-board API (`GET /api/job-board-api`): `{"data": [...], "links", "meta"}`.

`created_at` is epoch seconds, `remote` a boolean, `job_types` free-form German or
English; descriptions carry a stray closing `</a>` and sometimes escaped HTML inside
real HTML. Only the first page is read (100 newest jobs).
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.sources.fetch import BoardMalformedError, PoliteFetcher
from shared.sources.normalise import (
    canonical_url,
    clean_text,
    html_to_text,
    looks_remote,
    parse_posted,
    salary_in_text,
)
from shared.sources.postings import Posting
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["Arbeitnow", "parse_arbeitnow"]


@register("arbeitnow")
class Arbeitnow:
    kind: ClassVar[str] = "arbeitnow"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        self.name = "arbeitnow"
        self.url = settings.arbeitnow_api_url

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, "Arbeitnow")
        return Listing(postings=parse_arbeitnow(decode_json(body, "Arbeitnow")))


def parse_arbeitnow(data: Any) -> list[Posting]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise BoardMalformedError("Arbeitnow: expected an object with a 'data' array")
    postings: list[Posting] = []
    for item in data["data"]:
        if not isinstance(item, dict):
            continue
        title = clean_text(item.get("title"))
        url = canonical_url(item.get("url"))
        if not title or not url:
            continue
        description = html_to_text(item.get("description"))
        location = clean_text(item.get("location")) or None
        types = [clean_text(t) for t in item.get("job_types") or () if isinstance(t, str)]
        postings.append(
            Posting(
                source="arbeitnow",
                board="arbeitnow",
                external_id=clean_text(item.get("slug")) or url,
                title=title,
                company=clean_text(item.get("company_name")),
                url=url,
                description=description,
                location=location,
                is_remote=item.get("remote") is True or looks_remote(location),
                salary=salary_in_text(description),
                posted_at=parse_posted(item.get("created_at")),
                employment_type=", ".join(t for t in types if t) or None,
                tags=tuple(
                    dict.fromkeys(t for t in (clean_text(x) for x in item.get("tags") or ()) if t)
                ),
            )
        )
    return postings
