"""The scores of a tailored resume (SPEC §5 `calculate-scores`): pure functions.

- matchScore = round(70 * share of required skills matched + 30 * share of preferred
  skills matched); a skill matches when one lower-cased string contains the other. An
  empty list contributes 0 (the share's denominator is at least 1, as in the original).
- atsScore = round(100 * share of required + preferred keywords found in the resume
  text, case-insensitively); 0 when the job names no keywords.
- qualityScore = length (up to 40 points, full at 1,500 characters) + 20 each for a
  contact block (an email address or phone number), an experience section and a skills
  section (markdown headings or lines naming them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import msgspec

FULL_LENGTH = 1500
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"\+?\d[\d ().-]{7,}\d")


class Scores(msgspec.Struct, frozen=True, kw_only=True):
    match_score: int
    ats_score: int
    quality_score: int
    matched_skills: list[str]
    missing_required_skills: list[str]
    missing_preferred_skills: list[str]


def skill_matches(skill: str, have: Iterable[str]) -> bool:
    """Two-way substring match, lower-cased: "React" matches "react.js" and vice versa."""
    wanted = skill.strip().lower()
    if not wanted:
        return False
    for own in have:
        mine = own.strip().lower()
        if mine and (wanted in mine or mine in wanted):
            return True
    return False


def _share(found: int, total: int) -> float:
    return found / max(total, 1)


def score(
    user_skills: list[str], required: list[str], preferred: list[str], resume_text: str
) -> Scores:
    matched_required = [s for s in required if skill_matches(s, user_skills)]
    matched_preferred = [s for s in preferred if skill_matches(s, user_skills)]
    match = round(
        70 * _share(len(matched_required), len(required))
        + 30 * _share(len(matched_preferred), len(preferred))
    )
    lowered = resume_text.lower()
    keywords = [k for k in (*required, *preferred) if k.strip()]
    present = sum(1 for k in keywords if k.strip().lower() in lowered)
    ats = round(100 * present / len(keywords)) if keywords else 0
    return Scores(
        match_score=match,
        ats_score=ats,
        quality_score=quality(resume_text),
        matched_skills=[*matched_required, *matched_preferred],
        missing_required_skills=[s for s in required if s not in matched_required],
        missing_preferred_skills=[s for s in preferred if s not in matched_preferred],
    )


def _has_section(text: str, *names: str) -> bool:
    pattern = re.compile(
        r"^\s*(?:#{1,6}\s*|\*\*)?(?:" + "|".join(names) + r")\b", re.IGNORECASE | re.MULTILINE
    )
    return bool(pattern.search(text))


def quality(resume_text: str) -> int:
    points = 40 * min(len(resume_text), FULL_LENGTH) / FULL_LENGTH
    if EMAIL.search(resume_text) or PHONE.search(resume_text):
        points += 20
    if _has_section(
        resume_text, "experience", "work experience", "professional experience", "employment"
    ):
        points += 20
    if _has_section(resume_text, "skills", "technical skills", "core skills"):
        points += 20
    return round(points)
