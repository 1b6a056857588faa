"""resume-parsing and profile-sync (SPEC §5). Orchestration only; the I/O is in steps.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from services.parsing import steps
from services.parsing.steps import (
    Downloaded,
    GithubSkills,
    ParseOutcome,
    ParsingDeps,
    ProfileSyncUser,
    ProfileUpdate,
    ReadmeAnalysis,
    Repo,
    Repos,
    SyncUpdate,
)
from shared.ai.budget import BudgetGuard, reserve, settle
from shared.events import ProfileSyncParams, ResumeParsingParams
from shared.workflow import (
    CachePolicy,
    Context,
    RetryPolicy,
    Spend,
    StepFailedError,
    Validate,
    Workflow,
    progress,
    workflow,
)

DB_RETRY = RetryPolicy(
    limit=5, delay=timedelta(seconds=1), backoff="exponential", max_delay=timedelta(seconds=30)
)
STORAGE_RETRY = RetryPolicy(
    limit=4, delay=timedelta(seconds=2), backoff="exponential", max_delay=timedelta(seconds=30)
)
# A rate-limited answer parks the run until GitHub's reset (up to an hour) and counts as a
# retry: leave room for a few of those besides ordinary transient failures.
GITHUB_RETRY = RetryPolicy(
    limit=8, delay=timedelta(seconds=2), backoff="exponential", max_delay=timedelta(minutes=2)
)


# Bump when parse-and-structure's result changes meaning, so older cached parses are not read.
PARSE_VERSION = "1"
PARSE_CACHE_TTL = timedelta(days=30)


def _unverified_skills(found: ReadmeAnalysis) -> list[str]:
    return [
        f"{skill!r} is neither a known technology nor named in the READMEs"
        for skill in found.unverified
    ]


README_GATE: Validate[ReadmeAnalysis] = Validate(_unverified_skills, retries=1)


def _llm_retry(base: float) -> RetryPolicy:
    return RetryPolicy(limit=3, delay=base, backoff="exponential", max_delay=timedelta(minutes=2))


async def parse_resume(
    ctx: Context[ParsingDeps], params: ResumeParsingParams, llm: RetryPolicy
) -> dict[str, Any]:
    """Download the file, structure it (checked against its text), save it, fill the
    profile's empty fields."""
    deps = ctx.deps
    file = await ctx.step(
        "download-file",
        steps.download_file,
        deps,
        params.file_url,
        params.file_type,
        retry=STORAGE_RETRY,
        timeout=timedelta(minutes=2),
        result_type=Downloaded,
    )
    # Identical files (same bytes, same parser) are parsed once, across runs and users.
    parsed = await ctx.step(
        "parse-and-structure",
        steps.parse_and_structure,
        deps,
        params.file_url,
        params.file_type,
        file.sha256,
        retry=llm,
        timeout=timedelta(minutes=6),
        result_type=ParseOutcome,
        # Values the document does not hold, still, after the step's own retry naming
        # them (the parsing issue's one retry): kept — invented entries dropped — and
        # marked needs_review. No further round: the retry with feedback was that round.
        validate=Validate(lambda outcome: outcome.problems, retries=0, fallback=False),
        cache=CachePolicy(
            key=f"{deps.ai.name}:{params.file_type}:{file.sha256}",
            ttl=PARSE_CACHE_TTL,
            version=PARSE_VERSION,
        ),
    )
    await ctx.step(
        "save-parsed-data",
        steps.save_parsed_data,
        deps,
        params.user_id,
        params.resume_id,
        parsed.text,
        parsed.resume,
        retry=DB_RETRY,
    )
    await ctx.step(
        "update-profile",
        steps.update_profile,
        deps,
        params.user_id,
        parsed.resume,
        retry=DB_RETRY,
        result_type=ProfileUpdate,
    )
    resume = parsed.resume
    return {
        "success": True,
        "extractedLength": len(parsed.text),
        "skillsCount": len(resume.skills),
        "experienceCount": len(resume.experience),
        "educationCount": len(resume.education),
        "model": parsed.model,
        "warnings": parsed.warnings,
    }


async def sync_profile(
    ctx: Context[ParsingDeps], params: ProfileSyncParams, llm: RetryPolicy
) -> dict[str, Any]:
    """Read a GitHub account and its repositories; merge their skills into the profile."""
    deps = ctx.deps
    handle = params.github_handle
    user = await ctx.step(
        "fetch-github-profile",
        steps.fetch_github_profile,
        deps,
        handle,
        retry=GITHUB_RETRY,
        result_type=ProfileSyncUser,
        # GitHub's hourly limit, shared by every replica; a 304 costs nothing.
        limit=Spend("github", 1, settle=lambda user: user.charged),
    )
    listed = await ctx.step(
        "fetch-github-repos",
        steps.fetch_github_repos,
        deps,
        handle,
        retry=GITHUB_RETRY,
        result_type=Repos,
        limit=Spend("github", 1, settle=lambda listed: listed.charged),
    )
    repos = listed.repos
    # A background sync: over the user's LLM budget it waits for the period's reset.
    guard = BudgetGuard(deps.budgets, params.user_id, deps.tier_name, policy="wait")
    prompt = min(len(repos), deps.readme_repos) * deps.readme_chars
    grant = await reserve(
        ctx,
        guard,
        "analyze-readmes",
        sum(
            deps.ai.estimate("analyze-readmes", prompt, fallback=README_GATE.is_fallback(n))
            for n in range(README_GATE.rounds)
        )
        if repos
        else 0.0,
    )
    try:
        readmes = await _analyze_readmes(ctx, deps, repos, llm)
    except StepFailedError:
        await settle(ctx, guard, "analyze-readmes", grant)
        raise
    await settle(ctx, guard, "analyze-readmes", grant)
    extracted = await ctx.step(
        "extract-skills",
        steps.extract_skills,
        repos,
        readmes.skills,
        result_type=GithubSkills,
    )
    await ctx.step(
        "update-profile",
        steps.update_github_profile,
        deps,
        params.user_id,
        user,
        extracted.skills,
        retry=DB_RETRY,
        result_type=SyncUpdate,
    )
    return {
        "success": True,
        "skillsExtracted": len(extracted.skills),
        "projectsFound": len(extracted.projects),
        "skills": extracted.skills,
        # Requests GitHub counted against its limit (a 304 re-sync counts none).
        "githubRequestsCharged": user.charged + listed.charged + readmes.charged,
        "readmeSkillsCached": readmes.cached,
        "projects": [
            {"name": p.name, "url": p.url, "stars": p.stars, "language": p.language}
            for p in extracted.projects
        ],
    }


async def _analyze_readmes(
    ctx: Context[ParsingDeps], deps: ParsingDeps, repos: list[Repo], llm: RetryPolicy
) -> ReadmeAnalysis:
    return await ctx.step(
        "analyze-readmes",
        steps.analyze_readmes,
        deps,
        repos,
        retry=llm,
        timeout=timedelta(minutes=4),
        result_type=ReadmeAnalysis,
        # Skills neither known nor in the READMEs: asked again, then the fallback model.
        validate=README_GATE,
        # At most one README request per top repository (the estimate; settled to the real).
        limit=Spend(
            "github", min(len(repos), deps.readme_repos), settle=lambda found: found.charged
        ),
    )


def resume_parsing(concurrency: int | None = None, retry_delay: float = 5.0) -> Workflow:
    """The resume-parsing workflow; `retry_delay` is the first wait before an LLM retry."""
    llm = _llm_retry(retry_delay)

    async def run(ctx: Context[ParsingDeps], params: ResumeParsingParams) -> dict[str, Any]:
        return await parse_resume(ctx, params, llm)

    run.__doc__ = parse_resume.__doc__
    return workflow(
        "resume-parsing",
        on="resume/parsing.requested",
        concurrency=concurrency,
        params=ResumeParsingParams,
        progress=progress(
            {
                "download-file": "Opening your resume",
                "parse-and-structure": "Reading your resume",
                "save-parsed-data": "Saving what we found",
                "update-profile": "Updating your profile",
            },
            summary=("skillsCount", "experienceCount", "educationCount"),
            failed="We could not read this resume. Please try another file.",
        ),
    )(run)


def profile_sync(concurrency: int | None = None, retry_delay: float = 5.0) -> Workflow:
    """The profile-sync workflow."""
    llm = _llm_retry(retry_delay)

    async def run(ctx: Context[ParsingDeps], params: ProfileSyncParams) -> dict[str, Any]:
        return await sync_profile(ctx, params, llm)

    run.__doc__ = sync_profile.__doc__
    return workflow(
        "profile-sync",
        on="profile/sync.requested",
        concurrency=concurrency,
        params=ProfileSyncParams,
        progress=progress(
            {
                "fetch-github-profile": "Looking up your GitHub profile",
                "fetch-github-repos": "Listing your repositories",
                "analyze-readmes": "Reading your projects",
                "extract-skills": "Finding your skills",
                "update-profile": "Updating your profile",
            },
            summary=("skillsExtracted", "projectsFound"),
            failed="We could not sync your GitHub profile. Please try again.",
        ),
    )(run)
