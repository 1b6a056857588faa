"""Remotive's public API (`GET /api/remote-jobs`): `{"00-warning", "0-legal-notice",
"job-count", "jobs": [...]}`.

`publication_date` is ISO with no time zone (UTC), `salary` is free text ("$18 - $22/hr",
"$31,2k- $52k", "OTE $25k - $35k", ""), `candidate_required_location` a free-text list,
and descriptions end with a tracking pixel.
"""

from __future__ import annotations

from typing import Any, ClassVar

from shared.sources.fetch import BoardMalformedError, PoliteFetcher
from shared.sources.normalise import (
    canonical_url,
    clean_text,
    html_to_text,
    parse_posted,
    parse_salary,
)
from shared.sources.postings import Posting
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["Remotive", "parse_remotive"]


@register("remotive")
class Remotive:
    kind: ClassVar[str] = "remotive"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        self.name = "remotive"
        self.url = settings.remotive_api_url

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, "Remotive")
        return Listing(postings=parse_remotive(decode_json(body, "Remotive")))


def parse_remotive(data: Any) -> list[Posting]:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise BoardMalformedError("Remotive: expected an object with a 'jobs' array")
    postings: list[Posting] = []
    for item in data["jobs"]:
        if not isinstance(item, dict):
            continue
        title = clean_text(item.get("title"))
        url = canonical_url(item.get("url"))
        if not title or not url or item.get("id") is None:
            continue
        logo = canonical_url(item.get("company_logo_url")) or canonical_url(
            item.get("company_logo")
        )
        tags = [clean_text(t) for t in item.get("tags") or () if isinstance(t, str)]
        category = clean_text(item.get("category"))
        postings.append(
            Posting(
                source="remotive",
                board="remotive",
                external_id=str(item["id"]),
                title=title,
                company=clean_text(item.get("company_name")),
                url=url,
                description=html_to_text(item.get("description")),
                company_logo=logo or None,
                location=clean_text(item.get("candidate_required_location")) or None,
                is_remote=True,
                salary=parse_salary(item.get("salary")),
                posted_at=parse_posted(item.get("publication_date")),
                employment_type=clean_text(item.get("job_type")).replace("_", " ") or None,
                tags=tuple(dict.fromkeys(t for t in [category, *tags] if t)),
            )
        )
    return postings
