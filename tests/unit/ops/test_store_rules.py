"""The store's rules: index groups, whose user an instance is, retention per status."""

from __future__ import annotations

import pytest

from shared.bus import Names
from shared.workflow.bulk import BulkFilter, eligible, job_id
from shared.workflow.model import InstanceState, utcnow
from shared.workflow.store import IndexSubjects, Retention, index_group, user_of, user_token


def test_unfinished_statuses_share_one_group():
    """Steps, sleeps and pauses move an instance within "active": no index write."""
    assert {index_group(s) for s in ("queued", "running", "waiting", "paused")} == {"active"}
    assert [index_group(s) for s in ("complete", "errored", "terminated")] == [
        "complete",
        "errored",
        "terminated",
    ]


@pytest.mark.parametrize(
    ("params", "user"),
    [
        ({"userId": "u1"}, "u1"),
        ({"userId": 42}, "42"),
        ({"userId": ""}, None),
        ({"userId": True}, None),
        ({"user_id": "u1"}, None),
        (["u1"], None),
        (None, None),
    ],
)
def test_user_is_the_userId_param(params, user):
    """Only a non-empty string or integer `userId` names the user."""
    assert user_of(params) == user


def test_user_subjects_are_safe_and_distinct():
    """A user id with dots, spaces or wildcards becomes one fixed-size subject token."""
    subjects = IndexSubjects(Names("hh"))
    odd = subjects.user("a.b *>", "wf")
    assert odd == f"hh.ixu.{user_token('a.b *>')}.wf"
    assert " " not in odd and ">" not in odd.split(".", 3)[-1]
    assert user_token("a") != user_token("b")
    assert subjects.group(None, None) == "hh.ix.*.*"
    assert subjects.user("u", None).endswith(".*")


def test_retention_by_status():
    """Finished and errored records get their own TTL; unfinished ones none; 0 keeps."""
    keep = Retention(finished=30 * 86400, errored=90 * 86400)
    assert keep.ttl("complete") == keep.ttl("terminated") == 30 * 86400
    assert keep.ttl("errored") == 90 * 86400
    assert keep.ttl("running") is None and keep.ttl("waiting") is None
    assert Retention(finished=0, errored=-1).ttl("complete") is None
    assert Retention(finished=0.2).ttl("complete") == 1  # JetStream's TTL is whole seconds


def test_bulk_ids_come_from_the_request():
    """The same action and filter is the same job; anything else (or a key) another."""
    where = BulkFilter(workflow="w", status="errored")
    assert job_id("restart", where) == job_id("restart", BulkFilter(workflow="w", status="errored"))
    assert job_id("restart", where) != job_id("replay", where)
    assert job_id("restart", where) != job_id("restart", where, from_step="s")
    assert job_id("restart", where) != job_id("restart", where, key="again")


def test_cancel_and_terminate_skip_finished_instances():
    now = utcnow()
    done = InstanceState(workflow="w", instance_id="i", status="complete", created_at=now)
    running = InstanceState(workflow="w", instance_id="j", status="running", created_at=now)
    assert not eligible("terminate", done) and not eligible("cancel", done)
    assert eligible("terminate", running)
    assert eligible("restart", done) and eligible("replay", done)
