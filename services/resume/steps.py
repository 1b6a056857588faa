"""The I/O of resume generation: plain async functions over `ResumeDeps`, no engine imports.

Each returns JSON-friendly values (the engine records them); each is safe to run again
on a redelivery (its writes are assignments or keyed by an idempotency key).
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from services.resume.scoring import Scores, score
from shared.ai import (
    AnalysisResult,
    CandidateProfile,
    JobPosting,
    RequirementsAnalysis,
    ResumeAI,
    ResumeResult,
)
from shared.ai.budget import Budgets
from shared.db import (
    Applications,
    EmailLog,
    EmailSend,
    Job,
    Jobs,
    JobScores,
    Profiles,
    Resumes,
    Usage,
)
from shared.email import EmailSender, OutgoingEmail
from shared.errors import NonRetryableError
from shared.weeks import week_start
from shared.workflow import step_feedback

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


class ResumeStore(Usage, Jobs, Profiles, Resumes, Applications, EmailLog, Protocol):
    """The aggregates resume generation reads and writes: the weekly limit's usage, the
    job, the profile and default resume, the application, and the email log."""


@dataclass
class ResumeDeps:
    """What the resume workflow's steps use, built in `__main__` (or by hand in tests)."""

    repo: ResumeStore
    ai: ResumeAI
    mailer: EmailSender
    clock: Callable[[], datetime] = field(default=_now)
    app_url: str = ""
    # First wait (seconds) before retrying an LLM call (RESUME_RETRY_DELAY); the
    # workflow's analysis and writing policies grow from it.
    retry_delay: float = 5.0
    # Per-user LLM budgets (shared/ai/budget.py); None: not enforced (the offline AI).
    budgets: Budgets | None = None

    async def tier_name(self, user_id: str) -> str:
        return (await self.repo.get_tier(user_id)).name


class UsageCheck(msgspec.Struct, frozen=True, kw_only=True):
    allowed: bool
    used: int
    limit: int  # -1 = unlimited


async def check_usage_limit(deps: ResumeDeps, user_id: str, application_id: str) -> UsageCheck:
    """The user's weekly generations against their tier; over it, mark the application."""
    tier = await deps.repo.get_tier(user_id)
    if tier.unlimited_generations:
        return UsageCheck(allowed=True, used=0, limit=-1)
    used = await deps.repo.count_ready_applications(user_id, week_start(deps.clock()))
    limit = tier.generation_limit_weekly
    if used < limit:
        return UsageCheck(allowed=True, used=used, limit=limit)
    await deps.repo.set_application_status(
        user_id, application_id, "limit_exceeded", f"Weekly limit reached ({used}/{limit})"
    )
    return UsageCheck(allowed=False, used=used, limit=limit)


async def get_job_details(deps: ResumeDeps, user_id: str, job_id: str) -> Job:
    """The job, read only together with its owner: another user's job is an error."""
    job = await deps.repo.get_job(user_id, job_id)
    if job is None:
        raise NonRetryableError(f"job {job_id} not found for this user")
    return job


class UserData(msgspec.Struct, frozen=True, kw_only=True):
    profile: CandidateProfile
    skills: list[str]
    resume_text: str | None = None


async def get_user_data(deps: ResumeDeps, user_id: str) -> UserData:
    """The profile (as the writer sees it) and the text of the default resume, if any."""
    profile = await deps.repo.get_profile(user_id)
    if profile is None:
        raise NonRetryableError(f"user {user_id} has no profile")
    candidate = msgspec.convert(msgspec.to_builtins(profile), CandidateProfile, strict=False)
    resume = await deps.repo.get_default_resume(user_id)
    skills = list(candidate.skills)
    for job in candidate.experience:
        skills.extend(s for s in job.skills if s not in skills)
    return UserData(
        profile=candidate,
        skills=skills,
        resume_text=resume.parsed_content if resume is not None else None,
    )


def posting(job: Job) -> JobPosting:
    requirements = job.requirements
    if isinstance(requirements, dict):
        requirements = [str(v) for v in requirements.values()]
    elif not isinstance(requirements, list):
        requirements = []
    return JobPosting(
        title=job.title,
        company=job.company or "",
        description=job.description or "",
        location=job.location,
        requirements=[str(r) for r in requirements],
        employment_type=job.employment_type,
        experience_level=job.experience_level,
    )


def posting_key(job: JobPosting) -> str:
    """The digest of a posting's normalised text: the same ad, whoever saved it (other
    user, other board, re-scraped with different whitespace, entities or markup), gives
    the same key, so it is analysed once (the step cache)."""
    parts = [job.title, job.company, job.description, *job.requirements]
    text = html.unescape("\n".join(parts))
    text = re.sub(r"<[^>]+>", " ", text)  # markup is presentation, not content
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return hashlib.sha256(text.encode()).hexdigest()


def posting_chars(job: Job) -> int:
    ad = posting(job)
    return len(ad.title) + len(ad.company) + len(ad.description) + sum(map(len, ad.requirements))


async def analyze_requirements(deps: ResumeDeps, job: Job) -> AnalysisResult:
    """Requirement analysis with the cheap model; the model and token usage come along.
    A quality gate's objections (a retry) go to the model; its last round, the fallback."""
    feedback = step_feedback()
    return await deps.ai.analyze_requirements(
        posting(job),
        feedback=feedback.text() if feedback else None,
        fallback=bool(feedback and feedback.fallback),
    )


async def write_resume(
    deps: ResumeDeps,
    user: UserData,
    job: Job,
    analysis: RequirementsAnalysis,
) -> ResumeResult:
    """The tailored markdown resume, from the profile only, with the strong model."""
    feedback = step_feedback()
    result = await deps.ai.write_resume(
        user.profile,
        posting(job),
        analysis,
        user.resume_text,
        feedback=feedback.text() if feedback else None,
        fallback=bool(feedback and feedback.fallback),
    )
    if not result.markdown.strip():
        raise NonRetryableError("the model returned an empty resume")
    return result


async def mark_budget_exceeded(
    deps: ResumeDeps, user_id: str, application_id: str, resets_at: str
) -> bool:
    return await deps.repo.set_application_status(
        user_id,
        application_id,
        "limit_exceeded",
        f"AI budget for this period reached (resets {resets_at})",
    )


async def calculate_scores(user: UserData, analysis: RequirementsAnalysis, markdown: str) -> Scores:
    return score(user.skills, analysis.required_skills, analysis.preferred_skills, markdown)


async def save_application(
    deps: ResumeDeps,
    user_id: str,
    application_id: str,
    job_id: str,
    markdown: str,
    model: str,
    scores: Scores,
) -> bool:
    saved = await deps.repo.save_application(
        user_id,
        application_id,
        job_id,
        tailored_resume=markdown,
        generation_model=model,
        scores=JobScores(
            match_score=scores.match_score,
            ats_score=scores.ats_score,
            matched_skills=scores.matched_skills,
            missing_required_skills=scores.missing_required_skills,
            missing_preferred_skills=scores.missing_preferred_skills,
        ),
    )
    if not saved:
        raise NonRetryableError(f"application {application_id} not found for this user")
    return True


async def mark_failed(deps: ResumeDeps, user_id: str, application_id: str, message: str) -> bool:
    return await deps.repo.set_application_status(user_id, application_id, "failed", message)


class EmailOutcome(msgspec.Struct, frozen=True, kw_only=True):
    sent: bool
    reason: str = ""
    message_id: str | None = None


async def send_ready_email(
    deps: ResumeDeps, user_id: str, application_id: str, job: Job, scores: Scores
) -> EmailOutcome:
    """Tell the user the resume is ready, unless they opted out; once per application."""
    prefs = await deps.repo.get_email_preferences(user_id)
    if not prefs.resume_ready:
        return EmailOutcome(sent=False, reason="opted out")
    profile = await deps.repo.get_profile(user_id)
    if profile is None or not profile.email:
        return EmailOutcome(sent=False, reason="no email address")
    key = f"resume-ready:{application_id}"
    if await deps.repo.email_already_sent(key):
        return EmailOutcome(sent=True, reason="already sent")
    subject = f"Your resume for {job.title} is ready"
    where = f" at {html.escape(job.company)}" if job.company else ""
    link = (
        f'<p><a href="{html.escape(deps.app_url)}/applications/{application_id}">'
        "Open it in HowlerHire</a></p>"
        if deps.app_url
        else ""
    )
    body = (
        f"<p>Hi {html.escape(profile.full_name or 'there')},</p>"
        f"<p>Your tailored resume for <strong>{html.escape(job.title)}</strong>{where} is "
        f"ready. Match score: {scores.match_score}%, ATS score: {scores.ats_score}%.</p>{link}"
    )
    sent = await deps.mailer.send(
        OutgoingEmail(
            to=profile.email,
            subject=subject,
            html=body,
            idempotency_key=key,
            user_id=str(profile.user_id),
        )
    )
    await deps.repo.record_email_send(
        EmailSend(
            idempotency_key=key,
            user_id=profile.user_id,
            email_type="resume_ready",
            recipient_email=profile.email,
            subject=subject,
            message_id=sent.message_id,
            metadata={"application_id": application_id, "provider": sent.provider},
        )
    )
    return EmailOutcome(sent=True, message_id=sent.message_id)
