"""resume-generation: tailor a resume to one job (SPEC §5). Orchestration only.

The two LLM steps are gated (shared/ai/gates.py: a rejected answer is retried with its
problems stated, then tried on the fallback model, then kept marked `needs_review`),
budgeted (shared/ai/budget.py: reserved before, settled after; over budget the run ends
`{success: false, error: 'budget_exceeded'}` — policy `fail`, as the user is waiting for
it; LLM_BUDGET_POLICY can make it `wait` for the period's reset) and limited by the
organisation's Anthropic limits (shared/ai/ratelimits.py). The analysis of one posting is
shared by everyone who tailors to it (the step cache, keyed by its normalised text).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from services.resume import steps
from services.resume.steps import ResumeDeps
from shared.ai import AnalysisResult, ResumeAI, ResumeResult
from shared.ai.budget import BudgetExceededError, BudgetGuard, reserve, settle
from shared.ai.claude import CHARS_PER_TOKEN
from shared.ai.gates import analysis_problems, resume_problems
from shared.ai.ratelimits import org_limits
from shared.events import ResumeGenerationParams
from shared.workflow import (
    CachePolicy,
    Context,
    RetryPolicy,
    StepFailedError,
    Validate,
    progress,
    workflow,
)

DB_RETRY = RetryPolicy(
    limit=5, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=30)
)


# Bump when the analysis prompt, schema or model changes what an analysis is.
ANALYSIS_VERSION = "analysis-1"
ANALYSIS_TTL = timedelta(days=14)
ANALYSIS_GATE: Validate[AnalysisResult] = Validate(
    lambda result: analysis_problems(result.analysis), retries=1
)


def worst_case(ai: ResumeAI, what: str, chars: int, gate: Validate[Any]) -> float:
    """What every round of a gated call could cost at most (the reservation)."""
    return sum(ai.estimate(what, chars, fallback=gate.is_fallback(n)) for n in range(gate.rounds))


@dataclass(frozen=True)
class Policies:
    """LLM retry policies; `base` seconds is the first wait (RESUME_RETRY_DELAY)."""

    analysis: RetryPolicy
    writing: RetryPolicy

    @classmethod
    def from_base(cls, base: float) -> Policies:
        # Analysis is cheap and quick; writing is long and costly: fewer, slower retries.
        return cls(
            analysis=RetryPolicy(limit=3, delay=base, backoff="exponential"),
            writing=RetryPolicy(limit=2, delay=base * 3, backoff="exponential"),
        )


# The concurrency limit (across replicas) is the LLM load the workflow may cause; the
# service applies RESUME_CONCURRENCY with `with_options`.
@workflow(
    "resume-generation",
    on="resume/generation.requested",
    concurrency=5,
    params=ResumeGenerationParams,
    progress=progress(
        {
            "check-usage-limit": "Checking your plan",
            "get-job-details": "Reading the job",
            "get-user-data": "Gathering your profile",
            "analyze-requirements": "Analysing the job",
            "generate-resume": "Writing your resume",
            "calculate-scores": "Scoring your match",
            "save-application": "Saving your application",
            "send-ready-email": "Letting you know",
        },
        summary=("matchScore", "atsScore", "qualityScore"),
        failed="We could not write this resume. Please try again.",
    ),
)
async def resume_generation(
    ctx: Context[ResumeDeps], params: ResumeGenerationParams
) -> dict[str, Any]:
    """Check the weekly limit, analyse the job, write the resume, score it, save it."""
    deps = ctx.deps
    policies = Policies.from_base(deps.retry_delay)
    uid, app_id = params.user_id, params.application_id
    guard = BudgetGuard(deps.budgets, uid, deps.tier_name, policy="fail")
    try:
        if not params.skip_usage_check:
            usage = await ctx.step(
                "check-usage-limit",
                steps.check_usage_limit,
                deps,
                uid,
                app_id,
                retry=DB_RETRY,
            )
            if not usage.allowed:
                return {"success": False, "error": "usage_limit_exceeded"}
        job = await ctx.step(
            "get-job-details",
            steps.get_job_details,
            deps,
            uid,
            params.job_id,
            retry=DB_RETRY,
        )
        user = await ctx.step("get-user-data", steps.get_user_data, deps, uid, retry=DB_RETRY)
        chars = steps.posting_chars(job)
        grant = await reserve(
            ctx,
            guard,
            "analyze-requirements",
            worst_case(deps.ai, "analyze-requirements", chars, ANALYSIS_GATE),
        )
        try:
            analysis = await ctx.step(
                "analyze-requirements",
                steps.analyze_requirements,
                deps,
                job,
                retry=policies.analysis,
                timeout=timedelta(minutes=3),
                result_type=AnalysisResult,
                validate=ANALYSIS_GATE,
                # One analysis per posting, whoever asks (a value that needed review is
                # never shared: the cache stores only answers that passed the gate).
                cache=CachePolicy(
                    key=f"{deps.ai.name}:{steps.posting_key(steps.posting(job))}",
                    ttl=ANALYSIS_TTL,
                    version=ANALYSIS_VERSION,
                ),
                limit=org_limits(chars / CHARS_PER_TOKEN + 2048),
            )
        except StepFailedError:
            await settle(ctx, guard, "analyze-requirements", grant)
            raise
        await settle(ctx, guard, "analyze-requirements", grant)
        writing_gate: Validate[ResumeResult] = Validate(
            lambda result: resume_problems(result.markdown, user.profile, user.resume_text),
            retries=1,
        )
        prompt = chars + len(msgspec.json.encode(user.profile)) + len(user.resume_text or "")
        grant = await reserve(
            ctx,
            guard,
            "generate-resume",
            worst_case(deps.ai, "generate-resume", prompt, writing_gate),
        )
        try:
            written = await ctx.step(
                "generate-resume",
                steps.write_resume,
                deps,
                user,
                job,
                analysis.analysis,
                retry=policies.writing,
                timeout=timedelta(minutes=6),
                result_type=ResumeResult,
                validate=writing_gate,
                limit=org_limits(prompt / CHARS_PER_TOKEN + 8192),
            )
        except StepFailedError:
            await settle(ctx, guard, "generate-resume", grant)
            raise
        await settle(ctx, guard, "generate-resume", grant)
        review = ctx.step_record("generate-resume")
        needs_review = bool(review and review.needs_review)
        scores = await ctx.step(
            "calculate-scores",
            steps.calculate_scores,
            user,
            analysis.analysis,
            written.markdown,
        )
        await ctx.step(
            "save-application",
            steps.save_application,
            deps,
            uid,
            app_id,
            params.job_id,
            written.markdown,
            written.model,
            scores,
            retry=DB_RETRY,
        )
    except BudgetExceededError as exc:
        await ctx.step(
            "mark-budget-exceeded",
            steps.mark_budget_exceeded,
            deps,
            uid,
            app_id,
            exc.grant.resets_at.isoformat(),
            retry=DB_RETRY,
        )
        return {"success": False, "error": "budget_exceeded"}
    except StepFailedError as exc:
        await ctx.step(
            "mark-failed", steps.mark_failed, deps, uid, app_id, exc.error_message, retry=DB_RETRY
        )
        raise
    # The resume is saved and ready; a failed notice does not undo that.
    with contextlib.suppress(StepFailedError):
        await ctx.step(
            "send-ready-email",
            steps.send_ready_email,
            deps,
            uid,
            app_id,
            job,
            scores,
            retry=DB_RETRY,
        )
    return {
        "success": True,
        "matchScore": scores.match_score,
        "atsScore": scores.ats_score,
        "qualityScore": scores.quality_score,
        "resumeLength": len(written.markdown),
        "model": written.model,
        # The quality gate kept its best attempt, not one that passed: a person should look.
        "needsReview": needs_review,
    }
