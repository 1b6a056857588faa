"""Lever postings (`GET /v0/postings/{site}?mode=json`), one site per company.

A bare JSON array; `createdAt` is epoch milliseconds, `workplaceType` lower-case
(`remote`/`hybrid`/`onsite`), `salaryRange{min, max, currency, interval}` on some
postings, the description split into HTML parts and `lists`. An unknown site answers an
object (`{"ok":false,"error":"Document not found"}`) instead of an array, with 404 or
even 200, so the body shape is the signal.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from shared.sources.fetch import BoardMalformedError, BoardNotFoundError, PoliteFetcher
from shared.sources.normalise import (
    canonical_url,
    clean_text,
    html_to_text,
    looks_remote,
    parse_posted,
    salary_from_amounts,
)
from shared.sources.postings import Posting, SalaryPeriod
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["Lever", "parse_lever"]

_INTERVALS: dict[str, SalaryPeriod] = {
    "per-year-salary": "year",
    "per-month-salary": "month",
    "per-week-salary": "week",
    "per-day-wage": "day",
    "per-hour-wage": "hour",
}


def _unknown_site(status: int, body: bytes) -> bool:
    return status == 404 or b"document not found" in body.lower()


@register("lever", per_company=True)
class Lever:
    kind: ClassVar[str] = "lever"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        assert company
        self.site = company
        self.name = f"lever:{company}"
        base = settings.lever_api_url.rstrip("/")
        self.url = f"{base}/v0/postings/{quote(company, safe='')}?mode=json"

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, f"Lever site {self.site!r}", not_found=_unknown_site)
        return Listing(postings=parse_lever(decode_json(body, self.name), self.site))


def parse_lever(data: Any, site: str) -> list[Posting]:
    if isinstance(data, dict) and data.get("ok") is False:
        raise BoardNotFoundError(f"lever:{site}: {clean_text(data.get('error')) or 'not found'}")
    if not isinstance(data, list):
        raise BoardMalformedError(f"lever:{site}: expected a JSON array of postings")
    company = site.replace("-", " ").replace("_", " ").title()
    postings: list[Posting] = []
    for item in data:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        title = clean_text(item.get("text"))
        url = canonical_url(item.get("hostedUrl")) or canonical_url(item.get("applyUrl"))
        if not title or not url:
            continue
        raw_categories = item.get("categories")
        categories: dict[str, Any] = raw_categories if isinstance(raw_categories, dict) else {}
        location = clean_text(categories.get("location"))
        workplace = clean_text(item.get("workplaceType")).lower()
        salary_range = item.get("salaryRange")
        salary = None
        if isinstance(salary_range, dict):
            salary = salary_from_amounts(
                salary_range.get("min"),
                salary_range.get("max"),
                salary_range.get("currency"),
                _INTERVALS.get(clean_text(salary_range.get("interval"))),
            )
        parts = [item.get("description") or item.get("opening") or ""]
        for block in item.get("lists") or ():
            if isinstance(block, dict):
                parts.append(
                    f"<h3>{block.get('text') or ''}</h3><ul>{block.get('content') or ''}</ul>"
                )
        parts.append(item.get("additional") or "")
        description = html_to_text("\n".join(p for p in parts if isinstance(p, str)))
        if not description:
            description = clean_text(item.get("descriptionPlain"))
        tags = [clean_text(categories.get(k)) for k in ("department", "team")]
        postings.append(
            Posting(
                source="lever",
                board=f"lever:{site}",
                external_id=str(item["id"]),
                title=title,
                company=company,
                url=url,
                apply_url=canonical_url(item.get("applyUrl")) or None,
                description=description,
                location=location or None,
                is_remote=workplace == "remote" or looks_remote(location),
                salary=salary,
                posted_at=parse_posted(item.get("createdAt")),
                employment_type=clean_text(categories.get("commitment")) or None,
                tags=tuple(dict.fromkeys(t for t in tags if t)),
            )
        )
    return postings
