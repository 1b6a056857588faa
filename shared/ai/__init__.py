"""The AI adapter: Claude when ANTHROPIC_API_KEY is set, else a deterministic offline stand-in.

```python
ai = create_ai(load_settings(AISettings, os.environ))
async with ai:
    result = await ai.analyze_requirements(JobPosting(title=..., description=...))
    result.analysis.required_skills, result.model, result.usage.output_tokens
```

Errors, for the engine: RetryAfterError (429/529, with the server's delay),
NonRetryableError (400-class answers, refusals, unreadable documents), UpstreamError
(5xx, timeouts, connection failures) and its MalformedReplyError (a reply that is not the
asked-for shape) — both retryable.
"""

from __future__ import annotations

from typing import Protocol

from shared.ai.claude import ClaudeAI, deprecated_models
from shared.ai.offline import OFFLINE_MODEL, OfflineAI
from shared.ai.replies import MalformedReplyError
from shared.ai.schemas import (
    AnalysisResult,
    CandidateProfile,
    Education,
    Experience,
    JobPosting,
    ParsedResume,
    ParseResult,
    Project,
    RequirementsAnalysis,
    ResumeResult,
    SkillsResult,
    Usage,
)
from shared.ai.settings import DEFAULT_CHEAP_MODEL, DEFAULT_STRONG_MODEL, AISettings

__all__ = [
    "DEFAULT_CHEAP_MODEL",
    "DEFAULT_STRONG_MODEL",
    "OFFLINE_MODEL",
    "AISettings",
    "AnalysisResult",
    "CandidateProfile",
    "ClaudeAI",
    "Education",
    "Experience",
    "JobPosting",
    "MalformedReplyError",
    "OfflineAI",
    "ParseResult",
    "ParsedResume",
    "Project",
    "RequirementsAnalysis",
    "ResumeAI",
    "ResumeResult",
    "SkillsResult",
    "Usage",
    "create_ai",
    "deprecated_models",
]


class ResumeAI(Protocol):
    """What the workflows call; ClaudeAI and OfflineAI both provide it."""

    name: str

    def estimate(self, what: str, prompt_chars: int, *, fallback: bool = False) -> float:
        """An upper bound of one call's cost in USD (for budget reservations)."""
        ...

    async def analyze_requirements(
        self, job: JobPosting, *, feedback: str | None = None, fallback: bool = False
    ) -> AnalysisResult: ...

    async def write_resume(
        self,
        profile: CandidateProfile,
        job: JobPosting,
        analysis: RequirementsAnalysis,
        existing_resume_text: str | None = None,
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> ResumeResult: ...

    async def parse_resume_pdf(
        self,
        pdf: bytes,
        *,
        text: str | None = None,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> ParseResult: ...

    async def parse_resume_docx(self, docx: bytes) -> ParseResult: ...

    async def parse_resume_text(
        self, text: str, *, feedback: str | None = None, fallback: bool = False
    ) -> ParseResult: ...

    async def skills_from_readmes(
        self,
        readmes: list[tuple[str, str]],
        *,
        feedback: str | None = None,
        fallback: bool = False,
    ) -> SkillsResult: ...

    async def aclose(self) -> None: ...


def create_ai(settings: AISettings) -> ClaudeAI | OfflineAI:
    """Claude if a key is configured, else the offline stand-in (which logs that it is one)."""
    if settings.anthropic_api_key:
        return ClaudeAI(settings)
    return OfflineAI()
