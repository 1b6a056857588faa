"""Greenhouse job boards (`GET /v1/boards/{token}/jobs?content=true`), one per company.

`content` is entity-escaped HTML (sometimes double-escaped `&amp;nbsp;`), dates are ISO
with an offset, `location.name` is free text, pay appears only inside the content. An
unknown board is a 404 today (`{"status":404,"error":"Job board not found"}`) and was a
400 `{"error":"Could not find a job board with token …"}` on the legacy API.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

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

__all__ = ["Greenhouse", "parse_greenhouse"]


def _unknown_board(status: int, body: bytes) -> bool:
    return status in (400, 404) and b"job board" in body.lower()


@register("greenhouse", per_company=True)
class Greenhouse:
    kind: ClassVar[str] = "greenhouse"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        assert company
        self.token = company
        self.name = f"greenhouse:{company}"
        base = settings.greenhouse_api_url.rstrip("/")
        self.url = f"{base}/v1/boards/{quote(company, safe='')}/jobs?content=true"

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(
            self.url, f"Greenhouse board {self.token!r}", not_found=_unknown_board
        )
        return Listing(postings=parse_greenhouse(decode_json(body, self.name), self.token))


def parse_greenhouse(data: Any, token: str) -> list[Posting]:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise BoardMalformedError(f"greenhouse:{token}: expected an object with a 'jobs' array")
    postings: list[Posting] = []
    for item in data["jobs"]:
        if not isinstance(item, dict) or item.get("id") is None:
            continue
        title = clean_text(item.get("title"))
        url = canonical_url(item.get("absolute_url"))
        if not title or not url:
            continue
        location_field = item.get("location")
        location = (
            clean_text(location_field.get("name")) if isinstance(location_field, dict) else ""
        )
        description = html_to_text(item.get("content"))
        departments = [
            clean_text(d.get("name")) for d in item.get("departments") or () if isinstance(d, dict)
        ]
        postings.append(
            Posting(
                source="greenhouse",
                board=f"greenhouse:{token}",
                external_id=str(item["id"]),
                title=title,
                company=clean_text(item.get("company_name")) or token.replace("-", " ").title(),
                url=url,
                description=description,
                location=location or None,
                is_remote=looks_remote(location),
                salary=salary_in_text(description),
                posted_at=parse_posted(item.get("first_published"))
                or parse_posted(item.get("updated_at")),
                tags=tuple(dict.fromkeys(d for d in departments if d)),
            )
        )
    return postings
