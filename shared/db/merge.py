"""The profile-merge rules as pure functions: what counts as empty, how skills combine.

The PostgreSQL backend states the same rules in one SQL UPDATE (so that they are applied
atomically against the row as it is at write time); the Supabase backend computes them
here and writes with a compare-and-set. The contract tests hold the two to one answer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

# Whitespace as both Python and PostgreSQL's regex engine spell it, so that "empty"
# means the same in both backends.
_BLANK = re.compile(r"[ \t\n\r\f\v]*")
BLANK_SQL_PATTERN = r"^[ \t\n\r\f\v]*$"


def is_empty(value: Any) -> bool:
    """NULL, a blank string, or an empty JSON array / object."""
    if value is None:
        return True
    if isinstance(value, str):
        return _BLANK.fullmatch(value) is not None
    if isinstance(value, list | dict):
        return not value
    return False


def skill_key(skill: str) -> str:
    """Skills compare case-insensitively and ignoring surrounding whitespace."""
    return skill.strip(" \t\n\r\f\v").lower()


def clean_skills(skills: Iterable[str]) -> list[str]:
    """Trimmed, non-blank skills without case-insensitive duplicates, first spelling kept."""
    seen: set[str] = set()
    result: list[str] = []
    for skill in skills:
        trimmed = skill.strip(" \t\n\r\f\v")
        key = trimmed.lower()
        if trimmed and key not in seen:
            seen.add(key)
            result.append(trimmed)
    return result


def merge_skills(existing: Iterable[Any], new: Iterable[str]) -> list[Any]:
    """`existing` unchanged and in order, then each new skill it does not already hold."""
    kept = list(existing)
    held = {skill_key(s) for s in kept if isinstance(s, str)}
    return kept + [s for s in clean_skills(new) if skill_key(s) not in held]


def add_once(urls: Iterable[Any], url: str | None) -> list[Any]:
    """`urls` with `url` appended unless it is blank or already there."""
    kept = list(urls)
    if url is None or is_empty(url) or url in kept:
        return kept
    return [*kept, url]
