"""The one job shape every board is normalised into, and the per-source outcome union."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

__all__ = [
    "ErrorKind",
    "Posting",
    "Salary",
    "SourceFailed",
    "SourceFound",
    "SourceOutcome",
]

SalaryPeriod = Literal["hour", "day", "week", "month", "year"]


class Salary(msgspec.Struct, frozen=True, kw_only=True):
    """Pay as the board states it: amounts in `currency` per `period` (None = not said)."""

    min: int | None = None
    max: int | None = None
    currency: str | None = None
    period: SalaryPeriod | None = None


class Posting(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A job found on a board, normalised: clean text, canonical URL, UTC dates.

    `source` is the board kind stored in `jobs.source` ("greenhouse"); `board` names the
    configured board it came from ("greenhouse:stripe").
    """

    source: str
    board: str
    external_id: str
    title: str
    company: str
    url: str
    description: str = ""
    apply_url: str | None = None
    company_logo: str | None = None
    location: str | None = None
    is_remote: bool = False
    salary: Salary | None = None
    posted_at: datetime | None = None
    employment_type: str | None = None
    tags: tuple[str, ...] = ()


ErrorKind = Literal[
    "timeout", "unreachable", "rate_limited", "http", "not_found", "malformed", "too_large"
]


class SourceFound(msgspec.Struct, frozen=True, kw_only=True, tag="ok", tag_field="status"):
    """A board answered: how many postings it holds and how many matched this user."""

    source: str
    total: int
    matched: int
    warnings: tuple[str, ...] = ()


class SourceFailed(msgspec.Struct, frozen=True, kw_only=True, tag="failed", tag_field="status"):
    """A board could not be read this run; the run goes on with the others."""

    source: str
    error: str  # the error's class name, e.g. "BoardNotFoundError"
    message: str


SourceOutcome = SourceFound | SourceFailed
