"""The normalised job every source produces, and the text helpers sources share."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import datetime

import msgspec

__all__ = ["Job", "SourceResult", "fix_mojibake", "html_to_text", "matches_keywords"]


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A job found on a board, in the shape `save-jobs` stores (SPEC §6 `jobs`)."""

    source: str  # "remoteok" | "weworkremotely"
    external_id: str
    title: str
    company: str
    url: str
    description: str = ""
    tags: tuple[str, ...] = ()
    location: str | None = None
    salary_min: int | None = None
    salary_max: int | None = None
    posted_at: datetime | None = None
    employment_type: str | None = None
    apply_url: str | None = None


class SourceResult(msgspec.Struct, frozen=True, kw_only=True):
    """Jobs from one source; `errors` names parts that failed (e.g. one feed of several)."""

    source: str
    jobs: tuple[Job, ...] = ()
    errors: tuple[str, ...] = ()


_BLOCK = re.compile(r"(?i)<\s*(br|/p|p|/div|div|/li|li|/h[1-6]|/tr|/ul|/ol)\b[^>]*>")
_TAG = re.compile(r"<[^>]+>")
_MOJIBAKE = re.compile(r"[\u00c2-\u00f4][\u0080-\u00bf]{1,3}")


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as Latin-1 ("\u00e2\u0080\u0099" → a right quote), only where valid."""

    def repair(match: re.Match[str]) -> str:
        try:
            return match.group(0).encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return match.group(0)

    return _MOJIBAKE.sub(repair, text)


def html_to_text(markup: str) -> str:
    """Readable text from a job description's HTML: block breaks kept, tags dropped."""
    text = _BLOCK.sub("\n", markup)
    text = _TAG.sub(" ", text)
    text = fix_mojibake(html.unescape(text)).replace("\u00a0", " ")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def matches_keywords(job: Job, keywords: Iterable[str]) -> bool:
    """True when any keyword (case-insensitive) appears in the title, description or tags.

    No keywords means no filter.
    """
    words = [k.strip().lower() for k in keywords if k and k.strip()]
    if not words:
        return True
    haystack = "\n".join([job.title, job.description, " ".join(job.tags)]).lower()
    return any(word in haystack for word in words)
