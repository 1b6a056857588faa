"""Dashboard sessions and CSRF tokens; the waterfall's geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.gateway.ui.render import WIDTH, waterfall
from services.gateway.ui.session import Sessions
from shared.workflow.model import InstanceState, StepRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_session_verifies_until_it_expires_and_only_under_its_token() -> None:
    sessions = Sessions("token-a", lifetime=60)
    cookie, session = sessions.issue(now=1000)
    assert "token-a" not in cookie
    assert sessions.verify(cookie, now=1059) == session
    assert sessions.verify(cookie, now=1060) is None  # expired
    assert Sessions("token-b").verify(cookie, now=1000) is None  # the token was rotated
    head, _, mac = cookie.rpartition(".")
    forged = head.replace(f"v1.{1060}", f"v1.{99999}") + "." + mac
    assert sessions.verify(forged, now=1000) is None  # a longer expiry without the key
    for bad in (None, "", "v1.x.y.z", "v2." + cookie[3:], cookie + "0", "a" * 300):
        assert sessions.verify(bad, now=1000) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    sessions = Sessions("token-a")
    _, one = sessions.issue()
    _, two = sessions.issue()
    assert one.csrf != two.csrf and len(one.csrf) == 40
    assert Sessions.csrf_ok(one, one.csrf)
    assert not Sessions.csrf_ok(one, two.csrf)
    assert not Sessions.csrf_ok(one, None)
    assert not Sessions.csrf_ok(one, "")


def test_token_check_is_exact() -> None:
    sessions = Sessions("s3cret")
    assert sessions.token_matches("s3cret")
    assert not sessions.token_matches("s3cret ")
    assert not sessions.token_matches("s3cre")
    assert not sessions.token_matches("")


def test_waterfall_places_queue_run_retry_sleep_and_wait_on_one_axis() -> None:
    s = timedelta(seconds=1)
    state = InstanceState(
        workflow="w",
        instance_id="i",
        status="waiting",
        created_at=T0,
        started_at=T0 + 2 * s,
        steps=[
            StepRecord(
                seq=0,
                name="a",
                status="complete",
                attempts=3,
                started_at=T0 + 2 * s,
                ended_at=T0 + 4 * s,
            ),
            StepRecord(
                seq=1,
                name="nap",
                kind="sleep",
                status="complete",
                started_at=T0 + 4 * s,
                ended_at=T0 + 6 * s,
                wake_at=T0 + 6 * s,
            ),
            StepRecord(
                seq=2,
                name="b",
                status="retrying",
                attempts=1,
                started_at=T0 + 7 * s,
                ended_at=T0 + 8 * s,
                retry_at=T0 + 10 * s,
            ),
        ],
    )
    rows, span = waterfall(state, now=T0 + 8 * s)
    assert span == 10.0  # up to the pending retry
    first, nap, retrying = rows
    assert [(b.kind, b.x, b.width) for b in first.bars] == [("queue", 0, 200), ("run", 200, 200)]
    assert first.retries == 2 and first.queued == 2.0 and first.ran == 2.0
    assert [(b.kind, b.x, b.width) for b in nap.bars] == [("sleep", 400, 200)]
    assert [(b.kind, b.x, b.width) for b in retrying.bars] == [
        ("queue", 600, 100),
        ("run", 700, 100),
        ("retry", 800, 200),
    ]
    assert all(0 <= b.x <= WIDTH and b.x + b.width <= WIDTH + 1.5 for r in rows for b in r.bars)


def test_a_finished_wait_does_not_stretch_the_axis_to_its_deadline() -> None:
    s = timedelta(seconds=1)
    state = InstanceState(
        workflow="w",
        instance_id="i",
        status="complete",
        created_at=T0,
        started_at=T0,
        ended_at=T0 + 4 * s,
        steps=[
            StepRecord(
                seq=0,
                name="gate",
                kind="wait",
                status="complete",
                started_at=T0,
                ended_at=T0 + 4 * s,
                wake_at=T0 + timedelta(days=7),
                event="go",
            ),
        ],
    )
    rows, span = waterfall(state, now=T0 + timedelta(hours=5))
    assert span == 4.0
    assert [(b.kind, b.x, b.width) for b in rows[0].bars] == [("wait", 0, 1000)]
