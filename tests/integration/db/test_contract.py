"""The repository contract: every backend gives the same answers to the same calls."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.db import (
    FREE_TIER,
    EmailPreferences,
    EmailSend,
    GithubMerge,
    JobScores,
    NewJob,
    ProfileFill,
)
from shared.errors import NonRetryableError
from shared.weeks import previous_week, week_start
from tests.integration.db.conftest import Harness

NOW = datetime(2026, 1, 14, 9, 0, tzinfo=UTC)  # a Wednesday
WEEK = previous_week(NOW)  # Mon 2026-01-05 00:00 .. Mon 2026-01-12 00:00


async def _job(h: Harness, user: uuid.UUID, url: str = "", **values: object) -> dict:
    return await h.seed.insert(
        "jobs",
        user_id=user,
        title=values.pop("title", "Backend Engineer"),
        company=values.pop("company", "Acme"),
        source="remoteok",
        source_url=url or f"https://jobs.example/{uuid.uuid4().hex}",
        **values,
    )


async def _application(h: Harness, user: uuid.UUID, job_id: str, **values: object) -> dict:
    return await h.seed.insert("job_applications", user_id=user, job_id=job_id, **values)


def _at(row: dict, key: str) -> datetime:
    return datetime.fromisoformat(row[key])


# resume-generation -----------------------------------------------------------------


async def test_user_without_subscription_gets_the_free_tier(backend: Harness) -> None:
    """No active subscription means the free tier, 5 generations a week."""
    user = await backend.seed.new_user()
    tier = await backend.repo.get_tier(user)
    assert (tier.name, tier.generation_limit_weekly) == ("free", 5)
    assert tier == FREE_TIER


async def test_active_subscription_sets_the_tier(backend: Harness) -> None:
    """The active subscription's tier applies; cancelled ones do not; -1 is unlimited."""
    pro, premium = await backend.seed.new_user(), await backend.seed.new_user()
    await backend.seed.insert(
        "user_subscriptions",
        user_id=pro,
        tier_id=await backend.tier_id("premium"),
        status="canceled",
    )
    await backend.seed.insert(
        "user_subscriptions", user_id=pro, tier_id=await backend.tier_id("pro"), status="active"
    )
    await backend.seed.insert(
        "user_subscriptions",
        user_id=premium,
        tier_id=await backend.tier_id("premium"),
        status="active",
    )
    assert (await backend.repo.get_tier(pro)).generation_limit_weekly == 50
    unlimited = await backend.repo.get_tier(str(premium))
    assert unlimited.generation_limit_weekly == -1
    assert unlimited.unlimited_generations


async def test_ready_applications_are_counted_from_the_week_start(backend: Harness) -> None:
    """Only the user's 'ready' applications created at or after the given instant count."""
    user, other = await backend.seed.new_user(), await backend.seed.new_user()
    job = await _job(backend, user)
    other_job = await _job(backend, other)
    start = week_start(NOW)
    for created, status in [
        (start, "ready"),
        (start + timedelta(days=1), "ready"),
        (start - timedelta(microseconds=1), "ready"),
        (start + timedelta(hours=1), "failed"),
        (start + timedelta(hours=2), "limit_exceeded"),
    ]:
        await _application(backend, user, job["id"], status=status, created_at=created)
    await _application(backend, other, other_job["id"], status="ready", created_at=start)
    assert await backend.repo.count_ready_applications(user, start) == 2


async def test_a_job_is_only_returned_to_its_owner(backend: Harness) -> None:
    """get_job with another user's id answers None instead of leaking the row."""
    owner, stranger = await backend.seed.new_user(), await backend.seed.new_user()
    row = await _job(backend, owner, requirements=["Python", "SQL"], salary_min=90000)
    job = await backend.repo.get_job(owner, row["id"])
    assert job is not None
    assert (job.title, job.company, job.salary_min) == ("Backend Engineer", "Acme", 90000)
    assert job.requirements == ["Python", "SQL"]
    assert job.matched_skills == []
    assert await backend.repo.get_job(stranger, row["id"]) is None
    assert await backend.repo.get_job(owner, uuid.uuid4()) is None


async def test_profile_reads_map_null_lists_to_empty(backend: Harness) -> None:
    """A profile's NULL list columns read as [] and its JSON arrays come back as lists."""
    user = await backend.seed.new_user()
    await backend.seed.insert(
        "profiles",
        user_id=user,
        email="ada@example.com",
        full_name="Ada",
        skills=["Python", "Go"],
        experience=[{"title": "Engineer", "company": "Acme"}],
        preferred_roles=None,
        remote_preference="remote",
        min_salary=120000,
    )
    profile = await backend.repo.get_profile(user)
    assert profile is not None
    assert profile.user_id == user
    assert profile.skills == ["Python", "Go"]
    assert profile.experience == [{"title": "Engineer", "company": "Acme"}]
    assert profile.preferred_roles == []
    assert (profile.remote_preference, profile.min_salary) == ("remote", 120000)
    assert await backend.repo.get_profile(uuid.uuid4()) is None


async def test_default_resume_is_the_one_marked_default(backend: Harness) -> None:
    """get_default_resume returns the is_default resume, None when there is none."""
    user = await backend.seed.new_user()
    assert await backend.repo.get_default_resume(user) is None
    await backend.seed.insert("resumes", user_id=user, name="old", is_default=False)
    row = await backend.seed.insert(
        "resumes", user_id=user, name="main", is_default=True, parsed_content="text"
    )
    resume = await backend.repo.get_default_resume(user)
    assert resume is not None
    assert (str(resume.id), resume.name, resume.parsed_content) == (row["id"], "main", "text")


async def test_application_status_is_set_with_its_message(backend: Harness) -> None:
    """set_application_status writes status and error_message, only for the owner."""
    user, stranger = await backend.seed.new_user(), await backend.seed.new_user()
    app = await _application(backend, user, (await _job(backend, user))["id"])
    message = "Weekly limit reached (5/5)"
    assert await backend.repo.set_application_status(user, app["id"], "limit_exceeded", message)
    assert not await backend.repo.set_application_status(stranger, app["id"], "failed", "x")
    stored = await backend.repo.get_application(user, app["id"])
    assert stored is not None
    assert (stored.status, stored.error_message) == ("limit_exceeded", message)


async def test_saving_an_application_twice_leaves_the_same_rows(backend: Harness) -> None:
    """save_application stores resume and scores; repeating it changes nothing."""
    user = await backend.seed.new_user()
    job = await _job(backend, user)
    app = await _application(backend, user, job["id"], status="failed", error_message="boom")
    scores = JobScores(
        match_score=82,
        ats_score=67,
        matched_skills=["Python"],
        missing_required_skills=["Kubernetes"],
        missing_preferred_skills=["Rust", "Go"],
    )
    kwargs = {"tailored_resume": "# Ada", "generation_model": "claude-x", "scores": scores}
    assert await backend.repo.save_application(user, app["id"], job["id"], **kwargs)
    first = (await backend.seed.rows("jobs", id=job["id"]))[0]
    assert await backend.repo.save_application(user, app["id"], job["id"], **kwargs)
    stored_app = await backend.repo.get_application(user, app["id"])
    stored_job = await backend.repo.get_job(user, job["id"])
    assert stored_app is not None
    assert stored_job is not None
    assert (stored_app.status, stored_app.tailored_resume, stored_app.generation_model) == (
        "ready",
        "# Ada",
        "claude-x",
    )
    assert stored_app.error_message is None
    assert (stored_job.match_score, stored_job.ats_score) == (82, 67)
    assert stored_job.missing_preferred_skills == ["Rust", "Go"]
    second = (await backend.seed.rows("jobs", id=job["id"]))[0]
    changed = {k for k in first if first[k] != second[k]}
    assert changed <= {"updated_at"}


async def test_saving_against_another_users_job_writes_nothing(backend: Harness) -> None:
    """save_application answers False when the job is not the user's, and writes nothing."""
    user, stranger = await backend.seed.new_user(), await backend.seed.new_user()
    job = await _job(backend, stranger)
    app = await _application(backend, user, (await _job(backend, user))["id"])
    scores = JobScores(match_score=1, ats_score=1)
    saved = await backend.repo.save_application(
        user, app["id"], job["id"], tailored_resume="x", generation_model="m", scores=scores
    )
    assert saved is False
    stored = await backend.repo.get_application(user, app["id"])
    assert stored is not None
    assert stored.status == "generating"
    assert (await backend.seed.rows("jobs", id=job["id"]))[0]["match_score"] is None


async def test_email_preferences_default_to_opted_in(backend: Harness) -> None:
    """Missing preferences read as opted in (marketing aside); an explicit false sticks."""
    user, quiet = await backend.seed.new_user(), await backend.seed.new_user()
    assert await backend.repo.get_email_preferences(user) == EmailPreferences()
    await backend.seed.insert("profiles", user_id=user, email_preferences={"jobMatches": False})
    await backend.seed.insert("profiles", user_id=quiet, email_preferences=None)
    prefs = await backend.repo.get_email_preferences(user)
    assert (prefs.job_matches, prefs.resume_ready, prefs.marketing_emails) == (False, True, False)
    assert await backend.repo.get_email_preferences(quiet) == EmailPreferences()


# resume-parsing --------------------------------------------------------------------


async def test_parsed_resume_is_saved(backend: Harness) -> None:
    """save_parsed_resume stores text and structure on the user's resume only."""
    user, stranger = await backend.seed.new_user(), await backend.seed.new_user()
    resume = await backend.seed.insert("resumes", user_id=user, name="cv")
    structured = {"name": "Ada", "skills": ["Python"], "experience": [{"title": "Eng"}]}
    saved = await backend.repo.save_parsed_resume(
        user, resume["id"], parsed_content="Ada\nPython", structured_data=structured
    )
    assert saved
    assert not await backend.repo.save_parsed_resume(
        stranger, resume["id"], parsed_content="x", structured_data={}
    )
    row = (await backend.seed.rows("resumes", id=resume["id"]))[0]
    assert (row["parsed_content"], row["structured_data"]) == ("Ada\nPython", structured)


async def test_profile_fill_writes_only_empty_fields(backend: Harness) -> None:
    """Parsed values land in NULL, blank and [] fields; what the user wrote stays."""
    user = await backend.seed.new_user()
    await backend.seed.insert(
        "profiles",
        user_id=user,
        full_name="Ada Lovelace",
        summary="   ",
        skills=[],
        experience=None,
        education=[{"institution": "Home"}],
    )
    fill = ProfileFill(
        full_name="A. Lovelace",
        summary="Mathematician",
        skills=["Python", "python", " Analysis "],
        experience=[{"title": "Analyst", "company": "Engine"}],
        education=[{"institution": "Elsewhere"}],
    )
    profile = await backend.repo.fill_empty_profile_fields(user, fill)
    assert profile is not None
    assert profile.full_name == "Ada Lovelace"
    assert profile.summary == "Mathematician"
    assert profile.skills == ["Python", "Analysis"]
    assert profile.experience == [{"title": "Analyst", "company": "Engine"}]
    assert profile.education == [{"institution": "Home"}]
    again = await backend.repo.fill_empty_profile_fields(user, ProfileFill(summary="Other"))
    assert again is not None
    assert again.summary == "Mathematician"
    assert await backend.repo.fill_empty_profile_fields(uuid.uuid4(), fill) is None


async def test_empty_values_never_replace_anything(backend: Harness) -> None:
    """A fill whose values are empty leaves even empty fields as they were."""
    user = await backend.seed.new_user()
    await backend.seed.insert("profiles", user_id=user, full_name=None, skills=None)
    profile = await backend.repo.fill_empty_profile_fields(
        user, ProfileFill(full_name=" ", skills=[" "])
    )
    assert profile is not None
    row = (await backend.seed.rows("profiles", user_id=user))[0]
    assert (row["full_name"], row["skills"]) == (None, None)


# profile-sync ----------------------------------------------------------------------


async def test_github_merge_adds_skills_once_and_fills_gaps(backend: Harness) -> None:
    """Skills merge case-insensitively, text fields fill only if empty, the blog URL once."""
    user = await backend.seed.new_user()
    await backend.seed.insert(
        "profiles",
        user_id=user,
        full_name="Ada",
        location="",
        skills=["Python", "go"],
        portfolio_urls=["https://ada.dev"],
    )
    merge = GithubMerge(
        skills=["Go", "Golang", "TypeScript", "JavaScript", "typescript", "PYTHON"],
        full_name="Ada L.",
        summary="Builds engines",
        location="London",
        blog_url="https://blog.ada.dev",
    )
    first = await backend.repo.merge_github_profile(user, merge)
    second = await backend.repo.merge_github_profile(user, merge)
    assert first is not None
    assert second is not None
    assert first.skills == ["Python", "go", "Golang", "TypeScript", "JavaScript"]
    assert (first.full_name, first.summary, first.location) == ("Ada", "Builds engines", "London")
    assert first.portfolio_urls == ["https://ada.dev", "https://blog.ada.dev"]
    assert (second.skills, second.portfolio_urls) == (first.skills, first.portfolio_urls)


async def test_github_merge_into_null_lists(backend: Harness) -> None:
    """NULL skills and portfolio_urls merge as if empty."""
    user = await backend.seed.new_user()
    await backend.seed.insert("profiles", user_id=user, skills=None, portfolio_urls=None)
    profile = await backend.repo.merge_github_profile(
        user, GithubMerge(skills=["Rust"], blog_url=" https://r.dev ")
    )
    assert profile is not None
    assert (profile.skills, profile.portfolio_urls) == (["Rust"], ["https://r.dev"])
    assert await backend.repo.merge_github_profile(uuid.uuid4(), GithubMerge()) is None


# job-discovery ---------------------------------------------------------------------


async def test_new_jobs_skip_existing_source_urls(backend: Harness) -> None:
    """insert_new_jobs counts only rows it inserted; known URLs and in-batch repeats skip."""
    user, other = await backend.seed.new_user(), await backend.seed.new_user()
    await _job(backend, user, "https://jobs.example/1", title="Known")
    await _job(backend, other, "https://jobs.example/2")
    jobs = [
        NewJob(source="remoteok", source_url="https://jobs.example/1", title="Again"),
        NewJob(source="remoteok", source_url="https://jobs.example/2", title="Other user's"),
        NewJob(source="wwr", source_url="https://jobs.example/3", title="New"),
        NewJob(source="wwr", source_url="https://jobs.example/3", title="Repeat in batch"),
    ]
    assert await backend.repo.insert_new_jobs(user, jobs) == 2
    assert await backend.repo.insert_new_jobs(user, jobs) == 0
    assert await backend.repo.insert_new_jobs(user, []) == 0
    rows = await backend.seed.rows("jobs", user_id=user)
    titles = sorted(row["title"] for row in rows)
    assert titles == ["Known", "New", "Other user's"]


async def test_new_jobs_store_every_field(backend: Harness) -> None:
    """Inserted jobs carry their fields, status 'new' and a discovered_at timestamp."""
    user = await backend.seed.new_user()
    posted = datetime(2026, 1, 2, 12, 30, tzinfo=UTC)
    job = NewJob(
        source="remoteok",
        source_url="https://remoteok.com/remote-jobs/1",
        title="Staff Engineer",
        company="Initech",
        external_id="ro-1",
        location="Worldwide",
        is_remote=True,
        description="Build things, with commas, and 'quotes'",
        requirements={"skills": ["Python"]},
        salary_min=100000,
        salary_max=150000,
        salary_currency="USD",
        match_score=75,
        match_reasons=["Python"],
        posted_at=posted,
    )
    assert await backend.repo.insert_new_jobs(str(user), [job]) == 1
    row = (await backend.seed.rows("jobs", user_id=user))[0]
    stored = await backend.repo.get_job(user, row["id"])
    assert stored is not None
    assert stored.status == "new"
    assert stored.discovered_at is not None
    assert stored.posted_at == posted
    assert (stored.title, stored.company, stored.is_remote) == ("Staff Engineer", "Initech", True)
    assert stored.description == job.description
    assert (stored.requirements, stored.match_reasons) == ({"skills": ["Python"]}, ["Python"])
    assert (stored.salary_min, stored.salary_max, stored.match_score) == (100000, 150000, 75)


# daily-discovery -------------------------------------------------------------------


async def test_active_users_have_roles_or_skills_and_page(backend: Harness) -> None:
    """list_active_users returns users with roles or skills, ordered, page by page."""
    active = sorted([await backend.seed.new_user() for _ in range(3)])
    idle = await backend.seed.new_user()
    await backend.seed.insert("profiles", user_id=active[0], preferred_roles=["Engineer"])
    await backend.seed.insert("profiles", user_id=active[1], skills=["Go"], preferred_roles=None)
    await backend.seed.insert("profiles", user_id=active[2], skills=["Go"], preferred_roles=["X"])
    await backend.seed.insert("profiles", user_id=idle, skills=[], preferred_roles=None)
    found = await backend.repo.list_active_users()
    assert [u for u in found if u in [*active, idle]] == active
    if backend.kind == "supabase-live":
        return  # a live project holds other users too; paging is checked locally
    first = await backend.repo.list_active_users(limit=2)
    rest = await backend.repo.list_active_users(after=first[-1], limit=2)
    assert (first, rest) == (active[:2], active[2:])


# weekly-summary --------------------------------------------------------------------


async def test_summary_recipients_exclude_opt_outs_and_emailless(backend: Harness) -> None:
    """weeklySummary false or no email excludes a profile; missing preferences include it."""
    users = sorted([await backend.seed.new_user() for _ in range(5)])
    await backend.seed.insert("profiles", user_id=users[0], email="a@example.com", full_name="A")
    await backend.seed.insert(
        "profiles", user_id=users[1], email="b@example.com", email_preferences=None
    )
    await backend.seed.insert(
        "profiles",
        user_id=users[2],
        email="c@example.com",
        email_preferences={"weeklySummary": False, "jobMatches": True},
    )
    await backend.seed.insert("profiles", user_id=users[3], email=None)
    await backend.seed.insert(
        "profiles", user_id=users[4], email="e@example.com", email_preferences={"jobMatches": False}
    )
    found = [r for r in await backend.repo.list_weekly_summary_recipients() if r.user_id in users]
    assert [(r.user_id, r.email) for r in found] == [
        (users[0], "a@example.com"),
        (users[1], "b@example.com"),
        (users[4], "e@example.com"),
    ]
    assert found[0].full_name == "A"
    if backend.kind != "supabase-live":
        page = await backend.repo.list_weekly_summary_recipients(after=users[0], limit=1)
        assert [r.user_id for r in page] == [users[1]]


async def test_weekly_stats_count_the_half_open_window(backend: Harness) -> None:
    """Stats count rows from Monday 00:00 inclusive to next Monday 00:00 exclusive."""
    user, other = await backend.seed.new_user(), await backend.seed.new_user()
    inside = [WEEK.start, WEEK.start + timedelta(days=3), WEEK.end - timedelta(microseconds=1)]
    outside = [WEEK.start - timedelta(microseconds=1), WEEK.end]
    for i, when in enumerate(inside):
        await _job(backend, user, discovered_at=when, match_score=60 + i, title=f"in{i}")
    best = await _job(backend, user, discovered_at=WEEK.start, match_score=90, title="Best")
    for when in outside:
        await _job(backend, user, discovered_at=when, match_score=99, title="out")
    await _job(backend, other, discovered_at=WEEK.start, match_score=100)
    applied = [WEEK.start + timedelta(days=1), WEEK.end]
    for when in applied:
        await _job(
            backend,
            user,
            discovered_at=WEEK.start - timedelta(days=30),
            status="applied",
            applied_at=when,
        )
    await _job(
        backend,
        user,
        discovered_at=WEEK.start - timedelta(days=30),
        status="new",
        applied_at=WEEK.start,
    )
    job = await _job(backend, user, discovered_at=WEEK.start - timedelta(days=30))
    for when, status in [
        (WEEK.start, "ready"),
        (WEEK.end - timedelta(seconds=1), "ready"),
        (WEEK.end, "ready"),
        (WEEK.start, "failed"),
    ]:
        await _application(backend, user, job["id"], status=status, created_at=when)

    stats = await backend.repo.weekly_stats(user, WEEK.start, WEEK.end)
    assert (stats.jobs_discovered, stats.applications_ready, stats.jobs_applied) == (4, 2, 1)
    assert stats.has_activity
    assert stats.top_match is not None
    assert (str(stats.top_match.job_id), stats.top_match.title) == (best["id"], "Best")
    assert stats.top_match.match_score == 90
    quiet = await backend.repo.weekly_stats(other, WEEK.end, WEEK.end + timedelta(days=7))
    assert not quiet.has_activity
    assert quiet.top_match is None


async def test_a_sent_email_is_recorded_once_per_key(backend: Harness) -> None:
    """record_email_send keeps one 'sent' row per key; failed attempts may repeat."""
    user = await backend.seed.new_user()
    key = f"weekly-summary:{user}:{WEEK.label}"
    send = EmailSend(
        idempotency_key=key,
        user_id=user,
        email_type="weekly_summary",
        recipient_email="ada@example.com",
        subject="Your Weekly Job Search Summary",
        message_id="msg_1",
        metadata={"week": WEEK.label},
    )
    failed = EmailSend(
        idempotency_key=key,
        user_id=user,
        email_type="weekly_summary",
        recipient_email="ada@example.com",
        status="failed",
        error_message="429",
    )
    assert not await backend.repo.email_already_sent(key)
    assert await backend.repo.record_email_send(failed)
    assert await backend.repo.record_email_send(failed)
    assert not await backend.repo.email_already_sent(key)
    assert await backend.repo.record_email_send(send)
    assert not await backend.repo.record_email_send(send)
    assert await backend.repo.email_already_sent(key)
    rows = await backend.seed.rows("email_send_history", user_id=user)
    assert sorted(row["status"] for row in rows) == ["failed", "failed", "sent"]
    sent = next(row for row in rows if row["status"] == "sent")
    assert sent["metadata"] == {"week": WEEK.label, "idempotency_key": key}
    assert (sent["message_id"], sent["subject"]) == ("msg_1", "Your Weekly Job Search Summary")


async def test_malformed_ids_fail_without_retries(backend: Harness) -> None:
    """An id that is not a UUID raises NonRetryableError naming the parameter."""
    with pytest.raises(NonRetryableError, match="userId"):
        await backend.repo.get_profile("not-a-uuid")
    with pytest.raises(NonRetryableError, match="jobId"):
        await backend.repo.get_job(uuid.uuid4(), "42")
