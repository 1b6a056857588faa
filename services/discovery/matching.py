"""What a user is looking for, which postings fit it, how well, and when two are one job.

Pure functions (no I/O): the search and save steps use them, and tests call them directly.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache

import msgspec

from shared.sources import Posting

__all__ = [
    "Criteria",
    "dedup_keys",
    "fits",
    "match_skills",
    "normalised_key",
]


class Criteria(msgspec.Struct, frozen=True, kw_only=True):
    """One run's search: from `searchCriteria`, else the profile (SPEC §5)."""

    keywords: list[str] = []
    locations: list[str] = []
    remote_only: bool = False
    skills: list[str] = []


@lru_cache(maxsize=4096)
def _matcher(term: str) -> tuple[str, re.Pattern[str]]:
    """The term's first word (a cheap substring test first: most skills are absent from
    most postings) and its pattern: whole words, plurals too, case-insensitive. "Go"
    must not match "good"; "C++", ".NET", and "engineers" for "engineer" must work;
    "full stack", "full-stack" and "fullstack" are one phrase."""
    words = [p for p in re.split(r"[\s\-_/]+", term.strip().lower()) if p]
    phrase = r"[\s\-_/]*".join(re.escape(w) for w in words)
    # No look-behind in front: a pattern that starts with its literal is searched fast.
    return (words[0] if words else ""), re.compile(rf"{phrase}(?:e?s)?(?![\w+#])")


def _mentions(text: str, term: str) -> bool:
    first, pattern = _matcher(term)
    if not first or first not in text:
        return False
    for match in pattern.finditer(text):
        start = match.start()
        if start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_+#."):
            return True
    return False


# Postings of a snapshot are the same objects for every run in a process (the store
# caches them), so their lower-cased text is computed once, not once per user.
@lru_cache(maxsize=16384)
def _searchable(posting: Posting) -> str:
    return "\n".join((posting.title, " ".join(posting.tags), posting.description)).lower()


@lru_cache(maxsize=16384)
def _scored_text(posting: Posting) -> str:
    return f"{posting.title}\n{posting.description}".lower()


_WORLDWIDE = re.compile(r"(?i)\b(anywhere|worldwide|global|remote)\b")


def fits(posting: Posting, criteria: Criteria) -> bool:
    """Whether a posting matches the keywords (title, description or tags), the remote
    preference and the locations (a remote job open to anywhere fits every location)."""
    if criteria.remote_only and not posting.is_remote:
        return False
    if criteria.locations:
        where = (posting.location or "").lower()
        unrestricted = posting.is_remote and (not where or _WORLDWIDE.search(where) is not None)
        if not unrestricted and not any(
            loc.strip().lower() in where for loc in criteria.locations if loc.strip()
        ):
            return False
    words = [k for k in criteria.keywords if k.strip()]
    if not words:
        return True
    haystack = _searchable(posting)
    return any(_mentions(haystack, word) for word in words)


def match_skills(posting: Posting, skills: Sequence[str]) -> tuple[int, list[str]]:
    """Match score = share of the user's skills named in title + description, x 100
    (SPEC §5), and the skills matched, in the user's order."""
    first: dict[str, str] = {}
    for skill in skills:
        if skill and skill.strip():
            first.setdefault(skill.strip().lower(), skill.strip())  # "Python" = "python"
    unique = list(first.values())
    if not unique:
        return 0, []
    text = _scored_text(posting)
    matched = [skill for skill in unique if _mentions(text, skill)]
    return round(100 * len(matched) / len(unique)), matched


_SUFFIX = re.compile(
    r"\b(inc|llc|ltd|limited|gmbh|ag|sa|sas|bv|plc|corp|corporation|co|company|pty)\b\.?"
)


def normalised_key(title: str, company: str | None) -> str:
    """Title + company folded for comparison: case, accents, punctuation and legal
    suffixes ("Inc.", "GmbH") ignored."""

    def fold(text: str) -> str:
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
        return " ".join(re.sub(r"[^a-z0-9+#]+", " ", text).split())

    company_folded = " ".join(_SUFFIX.sub(" ", fold(company or "")).split())
    return f"{fold(title)}|{company_folded}"


def dedup_keys(title: str, company: str | None, url: str | None) -> Iterable[str]:
    """The keys under which a job counts as already seen: its URL and its title+company
    (the latter only when a company is known: two "Engineer" jobs of unknown companies
    are not the same job)."""
    if url:
        yield f"url:{url}"
    if company and company.strip():
        yield f"tc:{normalised_key(title, company)}"
