"""The offline stand-in for Claude: deterministic rules, no network, and it says so.

Used when ANTHROPIC_API_KEY is not set, so a laptop runs every workflow end to end.
Every result carries `model: "offline"`; the generated resume is assembled only from the
profile (no facts added) and opens with a comment naming the stand-in.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re

from shared.ai.heuristics import parse_resume
from shared.ai.schemas import (
    AnalysisResult,
    CandidateProfile,
    JobPosting,
    ParseResult,
    RequirementsAnalysis,
    ResumeResult,
    SkillsResult,
    Usage,
)
from shared.ai.skills import classify_segments, find_culture, find_skills, find_years
from shared.documents import docx_text, pdf_text
from shared.errors import NonRetryableError

__all__ = ["OFFLINE_MODEL", "OfflineAI"]

log = logging.getLogger(__name__)

OFFLINE_MODEL = "offline"
BANNER = (
    "<!-- Offline stand-in (model: offline): assembled from the profile only; no AI was used. -->"
)

_ACTION = re.compile(
    r"^(build|design|develop|lead|own|work|collaborate|create|maintain|drive|manage|implement|"
    r"write|ship|improve|mentor|support|partner|help|architect|define|deliver|scale)\w*\b",
    re.I,
)


class OfflineAI:
    """Same interface as ClaudeAI; deterministic and local."""

    name = OFFLINE_MODEL

    def __init__(self) -> None:
        log.warning(
            "ANTHROPIC_API_KEY is not set: using the offline AI stand-in (model: offline). "
            "Analyses, resumes and parses are rule-based, not Claude's."
        )

    async def __aenter__(self) -> OfflineAI:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        return None

    def estimate(self, what: str, prompt_chars: int, *, fallback: bool = False) -> float:
        """Nothing: the stand-in costs no money (and reserves no budget)."""
        return 0.0

    async def analyze_requirements(
        self, job: JobPosting, *, feedback: str | None = None, fallback: bool = False
    ) -> AnalysisResult:
        """Skills by vocabulary, "nice to have" cues for preferred, "N+ years", headings."""
        log.info("offline stand-in: analyze-requirements for %r", job.title)
        description = _plain(job.description)
        text = "\n".join([job.title, *job.requirements, description])
        required: list[str] = []
        preferred: list[str] = []
        responsibilities: list[str] = []
        other: list[str] = []
        for requirement in job.requirements:
            _add(required, find_skills(requirement))
        _add(required, find_skills(job.title))
        for kind, segment in classify_segments(description):
            skills = find_skills(segment)
            if kind == "preferred":
                _add(preferred, skills)
            else:
                _add(required, skills)
            if kind == "responsibility":
                responsibilities.append(segment)
            elif _ACTION.match(segment):
                other.append(segment)
        preferred = [s for s in preferred if s.lower() not in {r.lower() for r in required}]
        analysis = RequirementsAnalysis(
            required_skills=required,
            preferred_skills=preferred,
            experience_years=find_years(text),
            key_responsibilities=[_clip(s) for s in (responsibilities or other)[:8]],
            culture_indicators=find_culture(text),
        )
        return AnalysisResult(analysis=analysis, model=OFFLINE_MODEL, usage=Usage())

    async def write_resume(
        self,
        profile: CandidateProfile,
        job: JobPosting,
        analysis: RequirementsAnalysis,
        existing_resume_text: str | None = None,
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> ResumeResult:
        """Markdown assembled only from the profile; job-relevant skills listed first.
        Deterministic, so a gate's `feedback` would get the same answer again."""
        log.info("offline stand-in: generate-resume for %r", job.title)
        wanted = [s.lower() for s in (*analysis.required_skills, *analysis.preferred_skills)]

        def relevant(skill: str) -> bool:
            lowered = skill.lower()
            return any(_contains_word(lowered, w) or _contains_word(w, lowered) for w in wanted)

        lines = [BANNER, f"# {profile.full_name or 'Candidate'}"]
        if profile.headline:
            lines.append(f"**{profile.headline}**")
        contact = [
            x
            for x in (profile.email, profile.location, profile.linkedin_url, _github(profile))
            if x
        ]
        if contact:
            lines += ["", " · ".join(contact)]
        summary = profile.summary or profile.headline
        if summary:
            lines += ["", "## Summary", "", summary.strip()]
        if profile.skills:
            matched = [s for s in profile.skills if relevant(s)]
            rest = [s for s in profile.skills if not relevant(s)]
            lines += ["", "## Skills", ""]
            if matched:
                lines.append(f"- **Relevant to this role:** {', '.join(matched)}")
            if rest:
                lines.append(f"- **Also:** {', '.join(rest)}")
        if profile.experience:
            lines += ["", "## Experience"]
            for job_entry in profile.experience:
                heading = " — ".join(x for x in (job_entry.title, job_entry.company) if x)
                lines += ["", f"### {heading or 'Role'}"]
                dates = _dates(job_entry.start_date, job_entry.end_date, job_entry.current)
                meta = " · ".join(x for x in (dates, job_entry.location) if x)
                if meta:
                    lines.append(f"*{meta}*")
                for bullet in _bullets(job_entry.description):
                    lines.append(f"- {bullet}")
        if profile.education:
            lines += ["", "## Education", ""]
            for school in profile.education:
                degree = ", ".join(x for x in (school.degree, school.field) if x)
                dates = _dates(school.start_date, school.end_date, False)
                parts = [f"**{degree}**" if degree else "", school.institution, dates]
                lines.append("- " + " — ".join(p for p in parts if p))
        if profile.portfolio_urls:
            lines += ["", "## Links", ""]
            lines += [f"- {url}" for url in profile.portfolio_urls]
        markdown = "\n".join(lines).strip() + "\n"
        return ResumeResult(markdown=markdown, model=OFFLINE_MODEL, usage=Usage())

    async def parse_resume_pdf(
        self,
        pdf: bytes,
        *,
        text: str | None = None,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> ParseResult:
        """pypdf text (unless given), then the rule-based parser. Rules copy text from the
        document, so `feedback` has nothing to correct."""
        log.info("offline stand-in: parse-and-structure (PDF)")
        if text is None:
            text = await asyncio.to_thread(pdf_text, pdf)
        return await self.parse_resume_text(text)

    async def parse_resume_docx(self, docx: bytes) -> ParseResult:
        """python-docx text (body, tables, headers), then the rule-based parser."""
        log.info("offline stand-in: parse-and-structure (DOCX)")
        text = await asyncio.to_thread(docx_text, docx)
        return await self.parse_resume_text(text)

    async def parse_resume_text(
        self, text: str, *, feedback: str | None = None, fallback: bool = False
    ) -> ParseResult:
        """Rule-based structure: emails, phones, headed sections, date-anchored jobs."""
        if not text.strip():
            raise NonRetryableError("the resume holds no extractable text")
        resume = await asyncio.to_thread(parse_resume, text)
        return ParseResult(resume=resume, text=text, model=OFFLINE_MODEL, usage=Usage())

    async def skills_from_readmes(
        self,
        readmes: list[tuple[str, str]],
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> SkillsResult:
        """Skills of the technology dictionary that the READMEs name."""
        found: list[str] = []
        for _, text in readmes:
            _add(found, find_skills(text))
        return SkillsResult(skills=found, model=OFFLINE_MODEL, usage=Usage())


def _add(target: list[str], skills: list[str]) -> None:
    known = {s.lower() for s in target}
    for skill in skills:
        if skill.lower() not in known:
            target.append(skill)
            known.add(skill.lower())


def _contains_word(text: str, word: str) -> bool:
    return bool(word) and re.search(rf"(?<![\w+#]){re.escape(word)}(?![\w+#])", text) is not None


def _plain(text: str) -> str:
    """Job descriptions may be HTML: keep the words and the line structure."""
    if "<" not in text:
        return text
    text = re.sub(r"(?i)<\s*(br|/p|/div|/li|/h\d|li)\b[^>]*>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", " ", text))


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _dates(start: str | None, end: str | None, current: bool) -> str:
    if not start and not end:
        return ""
    finish = "Present" if current else (end or "")
    return f"{start} \u2013 {finish}" if start and finish and finish != start else (start or finish)


def _bullets(description: str) -> list[str]:
    return [
        line.strip().lstrip("-*•· ").strip() for line in description.splitlines() if line.strip()
    ]


def _github(profile: CandidateProfile) -> str | None:
    return f"github.com/{profile.github_handle}" if profile.github_handle else None
