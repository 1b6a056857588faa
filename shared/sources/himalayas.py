"""Himalayas' public jobs API (`GET /jobs/api`): `{"jobs": [...], "totalCount", ...}`.

Salaries are structured (`minSalary`, `maxSalary`, `currency`, `salaryPeriod`
"annual"/"hourly"), `pubDate` is epoch seconds. Captures show placeholder values
(`companyName: "name"`, `companyLogo: "thumbnail_url"`): the company then comes from
`companySlug` and the logo is dropped.
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
from shared.sources.postings import Posting, SalaryPeriod
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["Himalayas", "parse_himalayas"]

_PERIODS: dict[str, SalaryPeriod] = {
    "annual": "year",
    "yearly": "year",
    "year": "year",
    "monthly": "month",
    "month": "month",
    "weekly": "week",
    "daily": "day",
    "hourly": "hour",
    "hour": "hour",
}
_PLACEHOLDERS = {"name", "companyname", "company_name", "null", "undefined"}


@register("himalayas")
class Himalayas:
    kind: ClassVar[str] = "himalayas"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        self.name = "himalayas"
        self.url = settings.himalayas_api_url

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, "Himalayas")
        return Listing(postings=parse_himalayas(decode_json(body, "Himalayas")))


def company_from_slug(slug: str) -> str:
    return " ".join(part.capitalize() for part in slug.replace("_", "-").split("-") if part)


def parse_himalayas(data: Any) -> list[Posting]:
    jobs = data.get("jobs") if isinstance(data, dict) else data
    if not isinstance(jobs, list):
        raise BoardMalformedError("Himalayas: expected an object with a 'jobs' array")
    postings: list[Posting] = []
    for item in jobs:
        if not isinstance(item, dict):
            continue
        title = clean_text(item.get("title"))
        url = canonical_url(item.get("applicationLink")) or canonical_url(item.get("guid"))
        if not title or not url:
            continue
        company = clean_text(item.get("companyName"))
        if company.lower() in _PLACEHOLDERS or not company:
            company = company_from_slug(clean_text(item.get("companySlug")))
        places = [clean_text(x) for x in item.get("locationRestrictions") or ()]
        period = _PERIODS.get(clean_text(item.get("salaryPeriod")).lower())
        tags = [clean_text(x) for x in (item.get("categories") or ()) if isinstance(x, str)]
        postings.append(
            Posting(
                source="himalayas",
                board="himalayas",
                external_id=clean_text(item.get("guid")) or url,
                title=title,
                company=company,
                url=url,
                description=html_to_text(item.get("description"))
                or clean_text(item.get("excerpt")),
                company_logo=canonical_url(item.get("companyLogo")) or None,
                location=", ".join(p for p in places if p) or None,
                is_remote=True,
                salary=salary_from_amounts(
                    item.get("minSalary"), item.get("maxSalary"), item.get("currency"), period
                ),
                posted_at=parse_posted(item.get("pubDate")),
                employment_type=clean_text(item.get("employmentType")) or None,
                tags=tuple(dict.fromkeys(t.replace("-", " ") for t in tags if t)),
            )
        )
    return postings
