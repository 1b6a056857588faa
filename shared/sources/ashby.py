"""Ashby job boards (`GET /posting-api/job-board/{name}?includeCompensation=true`).

`publishedAt` is ISO with milliseconds, `workplaceType` "Remote"/"Hybrid"/"OnSite",
`isListed: false` postings are hidden, titles carry stray spaces, and pay comes as
`compensation.summaryComponents` (Salary / Equity… with "1 YEAR" intervals) plus a
summary text ("$211.4K \u2013 $290.6K \u2022 Offers Equity"). The board name is case-sensitive.
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
    parse_salary,
    salary_from_amounts,
)
from shared.sources.postings import Posting, Salary, SalaryPeriod
from shared.sources.registry import BoardSettings, Listing, decode_json, register

__all__ = ["Ashby", "parse_ashby"]

_INTERVALS: dict[str, SalaryPeriod] = {
    "1 YEAR": "year",
    "1 MONTH": "month",
    "1 WEEK": "week",
    "1 DAY": "day",
    "1 HOUR": "hour",
}


@register("ashby", per_company=True)
class Ashby:
    kind: ClassVar[str] = "ashby"

    def __init__(self, settings: BoardSettings, company: str | None = None) -> None:
        assert company
        self.board = company
        self.name = f"ashby:{company}"
        base = settings.ashby_api_url.rstrip("/")
        self.url = (
            f"{base}/posting-api/job-board/{quote(company, safe='')}?includeCompensation=true"
        )

    async def fetch(self, fetcher: PoliteFetcher) -> Listing:
        body = await fetcher.get(self.url, f"Ashby board {self.board!r}")
        return Listing(postings=parse_ashby(decode_json(body, self.name), self.board))


def _salary(compensation: Any) -> Salary | None:
    if not isinstance(compensation, dict):
        return None
    for component in compensation.get("summaryComponents") or ():
        if isinstance(component, dict) and component.get("compensationType") == "Salary":
            salary = salary_from_amounts(
                component.get("minValue"),
                component.get("maxValue"),
                component.get("currencyCode"),
                _INTERVALS.get(clean_text(component.get("interval")).upper()),
            )
            if salary is not None:
                return salary
    for key in ("scrapeableCompensationSalarySummary", "compensationTierSummary"):
        salary = parse_salary(compensation.get(key))
        if salary is not None:
            return salary
    return None


def parse_ashby(data: Any, board: str) -> list[Posting]:
    if not isinstance(data, dict) or not isinstance(data.get("jobs"), list):
        raise BoardMalformedError(f"ashby:{board}: expected an object with a 'jobs' array")
    company = board.replace("-", " ").replace("_", " ")
    company = company if any(c.isupper() for c in company) else company.title()
    postings: list[Posting] = []
    for item in data["jobs"]:
        if not isinstance(item, dict) or not item.get("id") or item.get("isListed") is False:
            continue
        title = clean_text(item.get("title"))
        url = canonical_url(item.get("jobUrl")) or canonical_url(item.get("applyUrl"))
        if not title or not url:
            continue
        places = [clean_text(item.get("location"))]
        for extra in item.get("secondaryLocations") or ():
            if isinstance(extra, dict):
                places.append(clean_text(extra.get("location")))
        location = ", ".join(dict.fromkeys(p for p in places if p))
        workplace = clean_text(item.get("workplaceType"))
        description = html_to_text(item.get("descriptionHtml")) or clean_text(
            item.get("descriptionPlain")
        )
        tags = [clean_text(item.get(k)) for k in ("department", "team")]
        postings.append(
            Posting(
                source="ashby",
                board=f"ashby:{board}",
                external_id=str(item["id"]),
                title=title,
                company=company,
                url=url,
                apply_url=canonical_url(item.get("applyUrl")) or None,
                description=description,
                location=location or None,
                is_remote=item.get("isRemote") is True
                or workplace.lower() == "remote"
                or looks_remote(clean_text(item.get("location"))),
                salary=_salary(item.get("compensation")),
                posted_at=parse_posted(item.get("publishedAt")),
                employment_type=clean_text(item.get("employmentType")) or None,
                tags=tuple(dict.fromkeys(t for t in tags if t)),
            )
        )
    return postings
