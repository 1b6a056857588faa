"""weekly-summary and email-unsubscribe (SPEC §5, issue 14). Orchestration only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.notify import steps
from services.notify.steps import ChunkPlan, ChunkResult, NotifyDeps, WeekPlan
from shared.events import EmailUnsubscribeParams, WeeklySummaryParams
from shared.workflow import Context, RetryPolicy, StepFailedError, Workflow, progress, workflow

DB_RETRY = RetryPolicy(
    limit=5, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=30)
)
# A 429 (Resend's 2 requests/s per team, shared with every other sender) is retried when
# Retry-After says; many in a row are normal under load, so the limit is generous.
SEND_RETRY = RetryPolicy(
    limit=40, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=60)
)


@workflow(
    "weekly-summary",
    on=("cron/weekly-summary", "email/weekly-summary"),
    concurrency=1,
    params=WeeklySummaryParams,
    progress=progress(
        {"plan-week": "Planning the week", "prepare-*": "Preparing emails", "send-*": "Sending"},
        summary=("totalUsers", "sent", "failed", "skipped"),
    ),
)
async def weekly_summary(ctx: Context[NotifyDeps], params: WeeklySummaryParams) -> dict[str, Any]:
    """Mail every opted-in user with activity last week their figures, in batches of 100."""
    deps = ctx.deps
    week = await ctx.step("plan-week", steps.plan_week, deps, result_type=WeekPlan)
    total = sent = failed = skipped = already = 0
    failed_users: list[str] = []
    cursor: str | None = None
    chunk = 0
    while True:
        # The batch name is the Idempotency-Key: stable across retries of this instance.
        batch = f"weekly-summary:{week.label}:{ctx.instance_id}:{chunk}"
        plan = await ctx.step(
            f"prepare-{chunk}",
            steps.prepare_chunk,
            deps,
            week,
            batch,
            cursor,
            retry=DB_RETRY,
            result_type=ChunkPlan,
        )
        total += plan.listed
        skipped += plan.skipped
        already += plan.already
        if plan.claimed:
            try:
                result = await ctx.step(
                    f"send-{chunk}",
                    steps.send_chunk,
                    deps,
                    week,
                    batch,
                    retry=SEND_RETRY,
                    timeout=timedelta(minutes=2),
                    result_type=ChunkResult,
                )
            except StepFailedError as exc:
                # This chunk's users are listed as failed; the other chunks still go out.
                result = await ctx.step(
                    f"fail-{chunk}",
                    steps.fail_chunk,
                    deps,
                    week,
                    batch,
                    exc.error_message,
                    retry=DB_RETRY,
                    result_type=ChunkResult,
                )
            sent += result.sent
            failed += result.failed
            failed_users.extend(result.failed_users)
        if plan.done:
            break
        cursor = plan.cursor
        chunk += 1
    return {
        "success": failed == 0,
        "week": week.label,
        "totalUsers": total,
        "sent": sent,
        "failed": failed,
        "skipped": skipped,
        "alreadySent": already,
        "failedUsers": failed_users,
    }


@workflow(
    "email-unsubscribe",
    on="email/unsubscribe.requested",
    params=EmailUnsubscribeParams,
    progress=progress({"set-preference": "Updating your email preferences"}),
)
async def email_unsubscribe(
    ctx: Context[NotifyDeps], params: EmailUnsubscribeParams
) -> dict[str, Any]:
    """Turn off one email preference from a verified one-click unsubscribe link."""
    changed = await ctx.step(
        "set-preference",
        steps.unsubscribe,
        ctx.deps,
        params.user_id,
        params.email_type,
        retry=DB_RETRY,
    )
    return {"success": True, "userFound": bool(changed), "emailType": params.email_type}


def workflows() -> list[Workflow]:
    return [weekly_summary, email_unsubscribe]
