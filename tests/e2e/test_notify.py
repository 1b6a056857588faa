"""weekly-summary end to end: the gateway and notify as their own processes, real NATS and
PostgreSQL, and a local server speaking Resend's API (batch endpoint, 2 requests/s)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest

from shared.db.migrate import migrate
from shared.embedded import free_port
from shared.unsubscribe import UnsubscribeLinks, UnsubscribeSettings
from shared.weeks import previous_week
from tests.support.fakes import FakeControl, ResendFake, RunningFake
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "e2e-token-0123456789"
SECRET = "unsubscribe-secret-for-e2e-0123456789"
APP_URL = "https://app.howlerhire.test"


@dataclass
class Stack:
    gateway_url: str
    dsn: str
    resend: FakeControl
    env: dict[str, str]
    tmp: Path
    procs: list[Proc] = field(default_factory=list)

    def start_notify(self, n: int, **extra: str) -> Proc:
        proc = spawn("services.notify", {**self.env, **extra}, self.tmp / f"notify{n}.log")
        self.procs.append(proc)
        return proc

    async def post(self, path: str, body: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            return await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    async def send_cron(self, event_id: str) -> str:
        response = await self.post(
            "/events", {"name": "cron/weekly-summary", "data": {}, "id": event_id}
        )
        assert response.status_code == 200, response.text
        [run] = response.json()["started"]
        assert run["workflow"] == "weekly-summary"
        return str(run["instanceId"])

    async def finished(self, instance_id: str, timeout: float = 180) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body: dict[str, Any] = {}
        while loop.time() < deadline:
            response = await self.post(
                "/status", {"workflow": "weekly-summary", "instanceId": instance_id}
            )
            body = response.json()
            if body.get("status") in ("complete", "errored", "terminated"):
                return body
            await asyncio.sleep(0.25)
        logs = "\n".join(p.output()[-3000:] for p in self.procs)
        raise AssertionError(f"{instance_id} not finished: {body}\n{logs}")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def weekly_pref(self, user: uuid.UUID) -> Any:
        [row] = await self.fetch(
            "SELECT email_preferences -> 'weeklySummary' AS v FROM profiles WHERE user_id=$1", user
        )
        return json.loads(row["v"]) if row["v"] is not None else None


@pytest.fixture
async def stack(nats_url, prefix, database_url, fixtures_dir, tmp_path) -> AsyncIterator[Stack]:
    await migrate(database_url)
    resend = RunningFake(ResendFake(fixtures_dir, rate_limit=2)).start()
    common = {"NATS_URL": nats_url, "HOWLERHIRE_NAMESPACE": prefix, "LOG_LEVEL": "INFO"}
    port = free_port()
    gateway_url = f"http://127.0.0.1:{port}"
    gateway = spawn(
        "services.gateway",
        {
            **common,
            "WORKFLOWS_AUTH_TOKEN": TOKEN,
            "GATEWAY_PORT": str(port),
            "UNSUBSCRIBE_SECRET": SECRET,
        },
        tmp_path / "gateway.log",
    )
    env = {
        **common,
        "DATABASE_URL": database_url,
        "ACK_WAIT": "2",
        "RESEND_API_KEY": "re_e2e_secret",
        "RESEND_API_URL": resend.url,
        "EMAIL_FROM": "HowlerHire <summary@example.com>",
        "UNSUBSCRIBE_SECRET": SECRET,
        "UNSUBSCRIBE_URL": f"{gateway_url}/unsubscribe",
        "APP_URL": APP_URL,
    }
    stack = Stack(gateway_url, database_url, resend.control, env, tmp_path, [gateway])
    try:
        await wait_http(gateway_url, gateway)
        yield stack
    finally:
        for proc in stack.procs:
            proc.kill()
        resend.stop()


def _last_week() -> tuple[datetime, datetime]:
    window = previous_week(datetime.now(UTC))
    return window.start, window.end


async def _profile(
    conn: asyncpg.Connection, email: str, name: str, prefs: dict[str, Any] | None = None
) -> uuid.UUID:
    user = uuid.uuid4()
    await conn.execute(
        "INSERT INTO profiles (user_id, email, full_name) VALUES ($1, $2, $3)", user, email, name
    )
    if prefs is not None:
        await conn.execute(
            "UPDATE profiles SET email_preferences = email_preferences || $2::jsonb "
            "WHERE user_id = $1",
            user,
            json.dumps(prefs),
        )
    return user


async def _job(conn: asyncpg.Connection, user: uuid.UUID, **values: Any) -> uuid.UUID:
    values.setdefault("title", "Engineer")
    values.setdefault("source", "remoteok")
    values.setdefault("source_url", f"https://jobs.example.com/{uuid.uuid4()}")
    columns = ["user_id", *values]
    placeholders = ", ".join(f"${i + 1}" for i in range(len(columns)))
    return await conn.fetchval(
        f"INSERT INTO jobs ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id",
        user,
        *values.values(),
    )


async def _application(
    conn: asyncpg.Connection, user: uuid.UUID, job: uuid.UUID, status: str, created: datetime
) -> None:
    await conn.execute(
        "INSERT INTO job_applications (user_id, job_id, status, created_at) VALUES ($1,$2,$3,$4)",
        user,
        job,
        status,
        created,
    )


async def seed_week(dsn: str) -> dict[str, uuid.UUID]:
    """Users with known figures for last week (boundaries included), one without activity,
    one opted out, one with NULL preferences."""
    start, end = _last_week()
    conn = await asyncpg.connect(dsn)
    try:
        ada = await _profile(conn, "ada@example.com", "Ada Lovelace")
        await _job(conn, ada, title="Backend Engineer", company="Globex", discovered_at=start,
                   match_score=80)  # fmt: skip
        best = await _job(conn, ada, title="Staff Engineer", company="Initech",
                          discovered_at=end - timedelta(milliseconds=1), match_score=95,
                          source_url="https://jobs.example.com/staff")  # fmt: skip
        await _job(conn, ada, title="Data Engineer", discovered_at=start + timedelta(days=2))
        await _job(conn, ada, title="Too new", discovered_at=end, match_score=99)
        old = await _job(conn, ada, title="Applied one", discovered_at=start - timedelta(days=9),
                         status="applied", applied_at=start + timedelta(days=1))  # fmt: skip
        for status, created in (
            ("ready", start + timedelta(hours=1)),
            ("ready", end - timedelta(seconds=1)),
            ("failed", start + timedelta(days=3)),
            ("ready", end + timedelta(hours=1)),
        ):
            await _application(conn, ada, best, status, created)
        grace = await _profile(conn, "grace@example.com", "Grace Hopper")
        gjob = await _job(conn, grace, discovered_at=start - timedelta(days=30))
        await _application(conn, grace, gjob, "ready", start + timedelta(days=4))
        idle = await _profile(conn, "idle@example.com", "Idle User")
        await _job(conn, idle, discovered_at=start - timedelta(days=1), match_score=70)
        optout = await _profile(conn, "optout@example.com", "Opted Out", {"weeklySummary": False})
        await _job(conn, optout, discovered_at=start + timedelta(days=1), match_score=88)
        nullprefs = await _profile(conn, "null@example.com", "Null Prefs")
        await conn.execute(
            "UPDATE profiles SET email_preferences = NULL WHERE user_id=$1", nullprefs
        )
        await _job(conn, nullprefs, discovered_at=start + timedelta(days=5))
    finally:
        await conn.close()
    return {"ada": ada, "grace": grace, "idle": idle, "optout": optout, "null": nullprefs,
            "old": old}  # fmt: skip


async def seed_many(dsn: str, n: int) -> list[str]:
    """`n` users, each with one job discovered last week; their addresses."""
    start, _ = _last_week()
    users = [uuid.uuid4() for _ in range(n)]
    emails = [f"user{i:05d}@example.com" for i in range(n)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "profiles",
            records=[
                (u, e, f"User {i}") for i, (u, e) in enumerate(zip(users, emails, strict=True))
            ],
            columns=["user_id", "email", "full_name"],
        )
        await conn.copy_records_to_table(
            "jobs",
            records=[
                (
                    u,
                    "Engineer",
                    "remoteok",
                    f"https://jobs.example.com/{u}",
                    start + timedelta(hours=5),
                    50,
                )
                for u in users
            ],
            columns=["user_id", "title", "source", "source_url", "discovered_at", "match_score"],
        )
    finally:
        await conn.close()
    return emails


def deliveries(control: FakeControl) -> list[dict[str, Any]]:
    return list(control.stats()["delivered"])


def batch_requests(control: FakeControl) -> list[dict[str, Any]]:
    return [r for r in control.requests("/emails/batch")]


async def test_weekly_figures_skips_opt_outs_and_one_click_unsubscribe(stack):
    """Seeded week: right figures in HTML and text, idle users skipped, opted-out users
    untouched, List-Unsubscribe headers; the one-click URL turns the preference off and a
    forged, tampered or expired token is refused with nothing changed."""
    users = await seed_week(stack.dsn)
    stack.start_notify(1)
    instance = await stack.send_cron("cron:weekly-summary:e2e-figures")
    body = await stack.finished(instance)
    assert body["status"] == "complete", body
    out = body["output"]
    assert (out["totalUsers"], out["sent"], out["failed"], out["skipped"]) == (4, 3, 0, 1)
    assert out["success"] is True and out["failedUsers"] == []

    sent = {d["to"][0]: d for d in deliveries(stack.resend)}
    assert set(sent) == {"ada@example.com", "grace@example.com", "null@example.com"}
    ada = sent["ada@example.com"]
    assert ada["subject"] == "Your Weekly Job Search Summary"
    text = ada["text"]
    assert "Jobs discovered: 3" in text
    assert "Resumes generated: 2" in text
    assert "Applications submitted: 1" in text
    assert "Top match: Staff Engineer at Initech (95% match)" in text
    assert f"{APP_URL}/dashboard" in text and f"{APP_URL}/settings/notifications" in text
    html = ada["html"]
    for figure in (">3<", ">2<", ">1<", "Staff Engineer", "Initech", "95% match"):
        assert figure in html
    assert f'href="{APP_URL}/dashboard"' in html
    grace_text = sent["grace@example.com"]["text"]
    assert "Jobs discovered: 0" in grace_text and "Resumes generated: 1" in grace_text
    assert "Top match" not in grace_text
    headers = ada["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe_url = headers["List-Unsubscribe"].strip("<>")
    assert unsubscribe_url.startswith(f"{stack.gateway_url}/unsubscribe?token=")
    assert unsubscribe_url in html and unsubscribe_url in text

    history = await stack.fetch(
        "SELECT user_id, status, message_id FROM email_send_history "
        "WHERE email_type='weekly_summary'"
    )
    ids = {d["id"] for d in deliveries(stack.resend)}
    assert len(history) == 3 and {r["status"] for r in history} == {"sent"}
    assert {r["message_id"] for r in history} == ids
    assert users["optout"] not in {r["user_id"] for r in history}

    async with httpx.AsyncClient(timeout=10) as client:
        # A person's click shows a confirmation page and changes nothing.
        page = await client.get(unsubscribe_url)
        assert page.status_code == 200 and "<form" in page.text
        assert await stack.weekly_pref(users["ada"]) is True
        token = parse_qs(urlsplit(unsubscribe_url).query)["token"][0]
        body_part, signature = token.split(".")
        links = UnsubscribeLinks(
            UnsubscribeSettings(unsubscribe_secret="someone-elses-secret-0123456789")
        )
        expired = UnsubscribeLinks(UnsubscribeSettings(unsubscribe_secret=SECRET)).token(
            users["grace"], "weekly_summary", datetime.now(UTC) - timedelta(minutes=1)
        )
        for bad in (
            links.token(users["grace"], "weekly_summary", datetime.now(UTC) + timedelta(days=1)),
            f"{body_part}.{signature[:-2]}AA",
            expired,
            "",
            "not-a-token",
        ):
            refused = await client.post(f"{stack.gateway_url}/unsubscribe", params={"token": bad})
            assert refused.status_code == 400, (bad, refused.text)
            assert refused.json()["field"] == "token"
        # The mailbox provider's one-click POST, without any bearer token.
        done = await client.post(
            unsubscribe_url,
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert done.status_code == 200, done.text
        assert done.json() == {"unsubscribed": True, "emailType": "weekly_summary"}
    for _ in range(200):
        if await stack.weekly_pref(users["ada"]) is False:
            break
        await asyncio.sleep(0.1)
    assert await stack.weekly_pref(users["ada"]) is False
    assert await stack.weekly_pref(users["grace"]) is True  # the refused tokens did nothing
    [row] = await stack.fetch(
        "SELECT email_preferences FROM profiles WHERE user_id=$1", users["ada"]
    )
    assert json.loads(row["email_preferences"])["resumeReady"] is True  # only that flag


async def test_sigkill_mid_run_cron_twice_and_rerun_after_keys_forgotten(stack):
    """300 users in batches of 20 at 2 requests/s: notify SIGKILLed mid-run, a new one
    finishes: every user exactly one email. The cron event sent again starts nothing; a
    re-run after Resend forgot its keys sends nothing either."""
    emails = await seed_many(stack.dsn, 300)
    first = stack.start_notify(1, NOTIFY_CHUNK_SIZE="20")
    slot = "cron:weekly-summary:2026-11-30T09:00:00Z"
    instance = await stack.send_cron(slot)
    for _ in range(600):
        if len(batch_requests(stack.resend)) >= 4:
            break
        await asyncio.sleep(0.05)
    assert len(batch_requests(stack.resend)) >= 4, first.output()
    first.kill()
    assert len(deliveries(stack.resend)) < 300
    stack.start_notify(2, NOTIFY_CHUNK_SIZE="20")
    body = await stack.finished(instance)
    assert body["status"] == "complete", body
    assert (body["output"]["sent"], body["output"]["failed"]) == (300, 0)
    stats = stack.resend.stats()
    assert stats["by_recipient"] == {e: 1 for e in emails}
    assert stats["deliveries"] == 300
    by_batch: dict[str, int] = {}
    for d in stats["delivered"]:
        by_batch[d["idempotency_key"]] = by_batch.get(d["idempotency_key"], 0) + 1
    assert len(by_batch) == 15 and set(by_batch.values()) == {20}

    assert await stack.send_cron(slot) == instance  # the same slot: the same instance
    stack.resend.call("POST", "forget-keys")
    rerun = await stack.post(
        "/trigger", {"workflow": "weekly-summary", "params": {}, "instanceId": "rerun-tuesday"}
    )
    assert rerun.status_code == 200, rerun.text
    again = await stack.finished("rerun-tuesday")
    assert again["status"] == "complete", again
    assert (again["output"]["sent"], again["output"]["alreadySent"]) == (0, 300)
    assert stack.resend.stats()["deliveries"] == 300
    rows = await stack.fetch(
        "SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM email_send_history "
        "WHERE email_type='weekly_summary' AND status='sent'"
    )
    assert (rows[0]["n"], rows[0]["users"]) == (300, 300)


async def test_rate_limit_429s_lose_nothing_and_failed_users_are_listed(stack):
    """A sender pacing faster than the fake's 2/s meets 429s: waits as Retry-After says,
    no email lost or doubled, the run takes as long as the limit allows; an address
    Resend refuses is listed as failed without holding back the rest."""
    emails = await seed_many(stack.dsn, 200)
    stack.resend.call("POST", "configure", json={"reject": [emails[7]]})
    stack.start_notify(1, NOTIFY_CHUNK_SIZE="10", RESEND_RATE_LIMIT="5")
    started = time.monotonic()
    instance = await stack.send_cron("cron:weekly-summary:e2e-429")
    body = await stack.finished(instance)
    elapsed = time.monotonic() - started
    assert body["status"] == "complete", body
    out = body["output"]
    assert (out["sent"], out["failed"]) == (199, 1)
    assert out["success"] is False and len(out["failedUsers"]) == 1
    stats = stack.resend.stats()
    assert stats["rate_limited"] > 0
    assert stats["max_per_second"] <= 2
    assert stats["by_recipient"] == {e: 1 for e in emails if e != emails[7]}
    assert elapsed >= (20 - 1) / 2  # 20 batch calls at 2/s
    [failed] = await stack.fetch(
        "SELECT p.email, h.error_message FROM email_send_history h JOIN profiles p "
        "USING (user_id) WHERE h.status='failed'"
    )
    assert failed["email"] == emails[7] and "Invalid `to`" in failed["error_message"]
