"""resume-generation: tailor a resume to one job (SPEC §5). Orchestration only."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from services.resume import steps
from services.resume.steps import ResumeDeps
from shared.ai import AnalysisResult, ResumeResult
from shared.events import ResumeGenerationParams
from shared.workflow import Context, RetryPolicy, StepFailedError, progress, workflow

DB_RETRY = RetryPolicy(
    limit=5, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=30)
)


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
        analysis = await ctx.step(
            "analyze-requirements",
            steps.analyze_requirements,
            deps,
            job,
            retry=policies.analysis,
            timeout=timedelta(minutes=3),
            result_type=AnalysisResult,
        )
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
        )
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
    }
