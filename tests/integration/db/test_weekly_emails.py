"""Weekly emails in the repository: chunk statistics in one query, and the one row per
(user, email type, week) that keeps anyone from being mailed twice for a week."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from shared.db import EmailClaim, EmailOutcome
from shared.weeks import previous_week
from tests.integration.db.conftest import Harness

WEEK = previous_week(datetime(2026, 1, 14, 9, 0, tzinfo=UTC))
TYPE = "weekly_summary"


async def test_chunk_stats_equal_per_user_stats(backend: Harness) -> None:
    """weekly_stats_for over several users gives each user's own figures (and zeros)."""
    users = [await backend.seed.new_user() for _ in range(4)]
    for i, user in enumerate(users[:3]):
        for n in range(i + 1):
            await backend.seed.insert(
                "jobs",
                user_id=user,
                title=f"job {n}",
                source="remoteok",
                source_url=f"https://jobs.example/{uuid.uuid4().hex}",
                discovered_at=WEEK.start + timedelta(hours=n),
                match_score=50 + 10 * n,
            )
    job = await backend.seed.insert(
        "jobs",
        user_id=users[1],
        title="applied",
        source="remoteok",
        source_url=f"https://jobs.example/{uuid.uuid4().hex}",
        discovered_at=WEEK.start - timedelta(days=20),
        status="applied",
        applied_at=WEEK.start + timedelta(days=2),
    )
    await backend.seed.insert(
        "job_applications",
        user_id=users[2],
        job_id=job["id"],
        status="ready",
        created_at=WEEK.start + timedelta(days=1),
    )
    many = await backend.repo.weekly_stats_for(users, WEEK.start, WEEK.end)
    assert set(many) == set(users)
    for user in users:
        assert many[user] == await backend.repo.weekly_stats(user, WEEK.start, WEEK.end)
    assert [many[u].jobs_discovered for u in users] == [1, 2, 3, 0]
    assert (many[users[1]].jobs_applied, many[users[2]].applications_ready) == (1, 1)
    top = many[users[2]].top_match
    assert top is not None and (top.title, top.match_score) == ("job 2", 70)
    assert many[users[3]].top_match is None and not many[users[3]].has_activity


def _claim(user: uuid.UUID, n: int = 0) -> EmailClaim:
    return EmailClaim(
        user_id=user,
        recipient_email=f"{user.hex[:8]}@example.com",
        subject="Your Weekly Job Search Summary",
        metadata={"summary": {"n": n}},
    )


async def test_one_row_per_user_type_and_week(backend: Harness) -> None:
    """A claim is repeatable by its batch; another batch gets only unclaimed or failed users;
    sent users are never claimed again that week; the next week is a new row."""
    users = sorted([await backend.seed.new_user() for _ in range(3)])
    for user in users:
        await backend.seed.insert("profiles", user_id=user, email=f"{user.hex[:8]}@example.com")
    first = await backend.repo.claim_weekly_emails(
        TYPE, WEEK.label, "b1", [_claim(u) for u in users[:2]]
    )
    assert [r.user_id for r in first] == users[:2] and {r.status for r in first} == {"queued"}
    again = await backend.repo.claim_weekly_emails(
        TYPE, WEEK.label, "b1", [_claim(u) for u in users[:2]]
    )
    assert again == first
    second = await backend.repo.claim_weekly_emails(
        TYPE, WEEK.label, "b2", [_claim(u, 1) for u in users]
    )
    assert [r.user_id for r in second] == [users[2]]
    changed = await backend.repo.finish_weekly_emails(
        TYPE,
        WEEK.label,
        "b1",
        [
            EmailOutcome(user_id=users[0], message_id="msg-0"),
            EmailOutcome(user_id=users[1], error="Invalid `to` field"),
        ],
    )
    assert changed == 2
    assert (
        await backend.repo.finish_weekly_emails(
            TYPE, WEEK.label, "b1", [EmailOutcome(user_id=users[0], message_id="msg-x")]
        )
        == 0
    )  # finished rows stay as they are
    done = {r.user_id: r for r in await backend.repo.batch_emails("b1")}
    assert (done[users[0]].status, done[users[0]].message_id) == ("sent", "msg-0")
    assert (done[users[1]].status, done[users[1]].error_message) == ("failed", "Invalid `to` field")
    # A re-run: the failed user is taken over, the sent one is not, the queued one is b2's.
    rerun = await backend.repo.claim_weekly_emails(
        TYPE, WEEK.label, "b3", [_claim(u, 2) for u in users]
    )
    assert [(r.user_id, r.status, r.metadata["summary"]) for r in rerun] == [
        (users[1], "queued", {"n": 2})
    ]
    later = await backend.repo.claim_weekly_emails(TYPE, "2026-W03", "c1", [_claim(users[0])])
    assert [r.user_id for r in later] == [users[0]]
    rows = await backend.seed.rows("email_send_history", user_id=users[0])
    assert sorted((r["metadata"]["week"], r["status"]) for r in rows) == [
        ("2026-W02", "sent"),
        ("2026-W03", "queued"),
    ]


async def test_set_email_preference_changes_one_flag(backend: Harness) -> None:
    """Unsubscribing sets one flag and keeps the others; no profile → False."""
    user = await backend.seed.new_user()
    await backend.seed.insert(
        "profiles", user_id=user, email="p@example.com",
        email_preferences={"weeklySummary": True, "resumeReady": True},
    )  # fmt: skip
    assert await backend.repo.set_email_preference(user, "weeklySummary", False)
    prefs = await backend.repo.get_email_preferences(user)
    assert (prefs.weekly_summary, prefs.resume_ready) == (False, True)
    assert not await backend.repo.set_email_preference(uuid.uuid4(), "weeklySummary", False)
