"""job-discovery and daily-discovery (SPEC §5, issue 13). Orchestration only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec

from services.discovery import steps
from services.discovery.matching import Criteria
from services.discovery.snapshots import SnapshotRef
from services.discovery.steps import (
    Combined,
    DiscoveryDeps,
    LimitCheck,
    PageSent,
    Saved,
    SearchResult,
)
from shared.errors import NonRetryableError
from shared.events import DailyDiscoveryParams, JobDiscoveryParams
from shared.sources import SourceFailed, SourceFound, SourceOutcome
from shared.workflow import (
    CachePolicy,
    Context,
    RetryPolicy,
    StepFailedError,
    Workflow,
    progress,
    workflow,
)

DB_RETRY = RetryPolicy(
    limit=5, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=30)
)
FETCH_RETRY = RetryPolicy(limit=2, delay=timedelta(seconds=2), backoff="exponential")
# Shown in the output; every new job is saved whatever this says.
OUTPUT_JOBS = 50

DISCOVERY_EVENTS = ("job/discovery.requested", "jobs/discovery.requested")


@dataclass(frozen=True)
class Policies:
    """How a failing board is retried within a round (briefly: a run must not wait long
    for one board), and when every board fails, how many rounds in all and the durable
    wait between them."""

    fetch: RetryPolicy = FETCH_RETRY
    rounds: int = 3
    retry_delay: timedelta = timedelta(minutes=15)


class AllSourcesFailedError(NonRetryableError):
    """No board could be read in any round."""


async def discover_jobs(
    ctx: Context[DiscoveryDeps], params: JobDiscoveryParams, policies: Policies
) -> dict[str, Any]:
    """Search every configured board for one user and save the new matching jobs."""
    deps = ctx.deps
    uid = params.user_id
    limit = await ctx.step(
        "check-discovery-limit",
        steps.check_discovery_limit,
        deps,
        uid,
        ctx.instance_id,
        retry=DB_RETRY,
        result_type=LimitCheck,
    )
    if not limit.allowed:
        return {
            "success": False,
            "error": "discovery_limit_exceeded",
            "used": limit.used,
            "limit": limit.limit,
        }
    criteria = await ctx.step(
        "get-user-profile",
        steps.get_user_profile,
        deps,
        uid,
        params.search_criteria,
        retry=DB_RETRY,
        result_type=Criteria,
    )
    refs: list[SnapshotRef] = []
    results: list[SearchResult] = []
    outcomes: list[SourceOutcome] = []
    for round_no in range(policies.rounds):
        suffix = f"-round{round_no + 1}" if round_no else ""
        outcomes = []
        for board in deps.boards:
            try:
                ref = await ctx.step(
                    f"fetch-{board.name}{suffix}",
                    steps.fetch_board,
                    deps,
                    board.name,
                    limit.period,
                    # One fetch per board and period for every run and replica: the engine
                    # shares the recorded snapshot reference (failures are not stored).
                    cache=CachePolicy(key=f"{board.name}:{limit.period}", ttl=deps.snapshot_ttl),
                    retry=policies.fetch,
                    timeout=timedelta(minutes=2),
                    result_type=SnapshotRef,
                )
            except StepFailedError as exc:
                outcomes.append(
                    SourceFailed(source=board.name, error=exc.error_name, message=exc.error_message)
                )
                continue
            result = await ctx.step(
                f"search-{board.name}{suffix}",
                steps.search_board,
                deps,
                ref,
                criteria,
                result_type=SearchResult,
            )
            refs.append(ref)
            results.append(result)
            outcomes.append(
                SourceFound(
                    source=board.name,
                    total=result.total,
                    matched=len(result.matches),
                    warnings=ref.warnings,
                )
            )
        if refs:
            break
        if round_no + 1 < policies.rounds:
            # Every board is down: wait durably (no worker held) and try them all again.
            await ctx.sleep(f"all-sources-down-{round_no + 1}", policies.retry_delay)
    if not refs:
        detail = "; ".join(
            f"{o.source}: {o.message}" for o in outcomes if isinstance(o, SourceFailed)
        )
        raise AllSourcesFailedError(f"every source failed {policies.rounds} times: {detail}")
    combined = await ctx.step(
        "combine-jobs",
        steps.combine_jobs,
        deps,
        uid,
        results,
        retry=DB_RETRY,
        result_type=Combined,
    )
    saved = await ctx.step(
        "save-jobs",
        steps.save_jobs,
        deps,
        uid,
        refs,
        combined.new,
        criteria.skills,
        retry=DB_RETRY,
        result_type=Saved,
    )
    return {
        "success": True,
        "jobsFound": combined.found - combined.duplicates,
        "newJobs": saved.inserted,
        "alreadySaved": combined.already_saved,
        "duplicates": combined.duplicates,
        "sourcesSearched": [o.source for o in outcomes if isinstance(o, SourceFound)],
        "sources": msgspec.to_builtins(outcomes),
        "jobs": msgspec.to_builtins(saved.jobs[:OUTPUT_JOBS]),
    }


async def discover_daily(
    ctx: Context[DiscoveryDeps], params: DailyDiscoveryParams
) -> dict[str, Any]:
    """Send one job/discovery.requested per active user, a page per durable step."""
    day = await ctx.step("fire-date", steps.today, ctx.deps)
    after: str | None = None
    users = pages = 0
    while True:
        page = await ctx.step(
            f"send-page-{pages + 1}",
            steps.send_page,
            ctx.deps,
            day,
            after,
            retry=DB_RETRY,
            result_type=PageSent,
        )
        pages += 1
        users += page.users
        if page.last is None:
            break
        after = page.last
    return {"success": True, "day": day, "usersFound": users, "eventsSent": users, "pages": pages}


def job_discovery(policies: Policies | None = None) -> Workflow:
    """The job-discovery workflow (runs as many at once as the workers allow)."""
    chosen = policies or Policies()

    async def run(ctx: Context[DiscoveryDeps], params: JobDiscoveryParams) -> dict[str, Any]:
        return await discover_jobs(ctx, params, chosen)

    run.__doc__ = discover_jobs.__doc__
    return workflow(
        "job-discovery",
        on=DISCOVERY_EVENTS,
        params=JobDiscoveryParams,
        progress=progress(
            {
                "check-discovery-limit": "Checking your plan",
                "get-user-profile": "Reading your profile",
                "fetch-*": "Searching job boards",
                "search-*": "Matching jobs to you",
                "combine-jobs": "Picking the best matches",
                "save-jobs": "Saving your new jobs",
            },
            summary=("jobsFound", "newJobs"),
            failed="We could not search for jobs just now. Please try again later.",
        ),
    )(run)


daily_discovery = workflow(
    "daily-discovery",
    on="cron/daily-discovery",
    concurrency=1,
    params=DailyDiscoveryParams,
    progress=progress(
        {"fire-date": "Starting today's run", "send-page-*": "Starting each user's search"},
        summary=("usersFound", "eventsSent", "pages"),
    ),
)(discover_daily)
