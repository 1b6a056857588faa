"""job-discovery and daily-discovery end to end: the gateway and the discovery service as
their own processes, real NATS and PostgreSQL, every job board a local server answering
its recorded listing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from shared.bus import Names, connect
from shared.db.migrate import migrate
from shared.embedded import free_port
from shared.workflow.control import event_internal_id
from tests.support.fakes import FAKES, RunningFake
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "e2e-token-discovery-0123"
KINDS = ("remoteok", "weworkremotely", "remotive", "greenhouse", "lever", "ashby")
SIX = "remoteok,weworkremotely,remotive,greenhouse:stripe,lever:matchgroup,ashby:ramp"
TERMINAL = ("complete", "errored", "terminated")


@pytest.fixture(scope="module")
def board_servers(fixtures_dir: Path) -> Iterator[dict[str, RunningFake]]:
    fakes = {kind: RunningFake(FAKES[kind](fixtures_dir)).start() for kind in KINDS}
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.stop()


@dataclass
class Stack:
    gateway_url: str
    dsn: str
    boards: dict[str, RunningFake]
    env: dict[str, str]
    tmp: Path
    nats_url: str
    prefix: str
    services: list[Proc]

    def start_discovery(self, n: int, **extra: str) -> Proc:
        proc = spawn("services.discovery", {**self.env, **extra}, self.tmp / f"discovery{n}.log")
        self.services.append(proc)
        return proc

    def check_alive(self) -> None:
        """Fail at once if a process died by itself (not by our SIGKILL)."""
        for proc in self.services:
            code = proc.popen.poll()
            assert code in (None, -9), f"a service exited with {code}:\n{proc.output()[-4000:]}"

    def logs(self) -> str:
        return "\n".join(p.output()[-4000:] for p in self.services)

    def requests(self, kind: str) -> int:
        return int(self.boards[kind].control.stats()["requests"])

    async def post(self, path: str, body: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=60) as client:
            return await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    async def trigger(self, params: dict[str, Any], instance_id: str | None = None) -> str:
        body: dict[str, Any] = {"workflow": "job-discovery", "params": params}
        if instance_id:
            body["instanceId"] = instance_id
        response = await self.post("/trigger", body)
        assert response.status_code == 200, response.text
        return str(response.json()["instanceId"])

    async def status(self, instance_id: str, workflow: str = "job-discovery") -> dict[str, Any]:
        response = await self.post("/status", {"workflow": workflow, "instanceId": instance_id})
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else {"status": "missing"}

    async def finished(
        self, instance_id: str, workflow: str = "job-discovery", timeout: float = 120
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body: dict[str, Any] = {}
        while loop.time() < deadline:
            body = await self.status(instance_id, workflow)
            if body["status"] in TERMINAL:
                return body
            self.check_alive()
            await asyncio.sleep(0.2)
        raise AssertionError(f"{instance_id} not finished: {body}\n{self.logs()}")

    async def steps(
        self, instance_id: str, workflow: str = "job-discovery"
    ) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            response = await client.get(
                f"/workflows/{workflow}/instances/{instance_id}",
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert response.status_code == 200, response.text
        return list(response.json()["steps"])

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def user(
        self,
        *,
        roles: list[str] | None = None,
        skills: list[str] | None = None,
        remote: str | None = None,
        daily_limit: int | None = None,
    ) -> str:
        user = uuid.uuid4()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "INSERT INTO profiles (user_id, email, skills, preferred_roles, remote_preference)"
                " VALUES ($1, 'u@example.com', $2::jsonb, $3::jsonb, $4)",
                user,
                json.dumps(skills if skills is not None else ["Python", "Kubernetes", "Go"]),
                json.dumps(roles if roles is not None else ["engineer"]),
                remote,
            )
            if daily_limit is not None:
                tier = await conn.fetchval(
                    "INSERT INTO subscription_tiers (name, generation_limit_weekly,"
                    " job_discovery_limit_daily) VALUES ($1, 5, $2) RETURNING id",
                    f"limited-{user.hex[:8]}",
                    daily_limit,
                )
                await conn.execute(
                    "INSERT INTO user_subscriptions (user_id, tier_id, status) "
                    "VALUES ($1, $2, 'active')",
                    user,
                    tier,
                )
        finally:
            await conn.close()
        return str(user)

    async def job_discovery_instances(self) -> set[str]:
        """Every job-discovery instance id in the namespace (one KV key each)."""
        nc = await connect(self.nats_url, "e2e-count", attempts=3)
        try:
            bucket = Names(self.prefix).state_bucket
            info = await nc.jetstream().stream_info(
                f"KV_{bucket}", subjects_filter=f"$KV.{bucket}.job-discovery.>"
            )
            return {subject.rsplit(".", 1)[-1] for subject in (info.state.subjects or {})}
        finally:
            await nc.drain()


def board_env(boards: dict[str, RunningFake]) -> dict[str, str]:
    wwr = boards["weworkremotely"]
    return {
        "REMOTEOK_API_URL": f"{boards['remoteok'].url}/api",
        "WWR_FEED_URLS": ",".join(wwr.app.feed_urls()),  # type: ignore[attr-defined]
        "REMOTIVE_API_URL": f"{boards['remotive'].url}/api/remote-jobs",
        "GREENHOUSE_API_URL": boards["greenhouse"].url,
        "LEVER_API_URL": boards["lever"].url,
        "ASHBY_API_URL": boards["ashby"].url,
    }


@pytest.fixture
async def stack(nats_url, prefix, database_url, board_servers, tmp_path) -> AsyncIterator[Stack]:
    await migrate(database_url)
    for fake in board_servers.values():
        fake.control.reset()
    common = {"NATS_URL": nats_url, "HOWLERHIRE_NAMESPACE": prefix, "LOG_LEVEL": "INFO"}
    port = free_port()
    gateway = spawn(
        "services.gateway",
        {**common, "WORKFLOWS_AUTH_TOKEN": TOKEN, "GATEWAY_PORT": str(port)},
        tmp_path / "gateway.log",
    )
    env = {
        **common,
        **board_env(board_servers),
        "DATABASE_URL": database_url,
        "ACK_WAIT": "5",
        "DISCOVERY_SOURCES": SIX,
        "DISCOVERY_FETCH_RETRIES": "0",
        "DISCOVERY_RETRY_DELAY": "1",
        "DISCOVERY_ROUNDS": "2",
        "DISCOVERY_FAILURE_HOLD": "0.5",
        "DISCOVERY_FETCH_TIMEOUT": "10",
    }
    stack = Stack(
        f"http://127.0.0.1:{port}",
        database_url,
        board_servers,
        env,
        tmp_path,
        nats_url,
        prefix,
        [gateway],
    )
    try:
        await wait_http(stack.gateway_url, gateway)
        yield stack
    finally:
        for proc in stack.services:
            proc.kill()


async def test_discovery_saves_new_jobs_from_six_boards_once(stack: Stack) -> None:
    """An event starts a run over six boards: matching jobs saved as 'new' with source,
    canonical URL, salary and match score; a second run saves nothing twice and fetches
    nothing again within the snapshot period."""
    stack.start_discovery(1)
    uid = await stack.user()
    sent = await stack.post(
        "/e/web-app", {"name": "jobs/discovery.requested", "data": {"userId": uid}}
    )
    assert sent.status_code in (200, 201), sent.text
    first = await stack.finished(sent.json()["started"][0]["instanceId"])
    assert first["status"] == "complete", first
    out = first["output"]
    assert out["success"] is True
    names = SIX.split(",")
    assert out["sourcesSearched"] == names
    assert [s["status"] for s in out["sources"]] == ["ok"] * 6
    totals = {s["source"]: s["total"] for s in out["sources"]}
    assert totals == {
        "remoteok": 59,
        "weworkremotely": 107,
        "remotive": 35,
        "greenhouse:stripe": 40,
        "lever:matchgroup": 40,
        "ashby:ramp": 40,
    }
    rows = await stack.fetch("SELECT * FROM jobs WHERE user_id = $1", uuid.UUID(uid))
    assert len(rows) == out["newJobs"] > 20
    assert out["jobsFound"] == out["newJobs"]
    assert {r["source"] for r in rows} == {
        "remoteok",
        "weworkremotely",
        "remotive",
        "greenhouse",
        "lever",
        "ashby",
    }
    for row in rows:
        assert row["status"] == "new" and row["discovered_at"] is not None
        if row["source"] != "remoteok":  # RemoteOK's tags (not stored) can be the match
            assert "engineer" in (row["title"] + (row["description"] or "")).lower()
        assert row["source_url"].startswith("https://") and "utm_" not in row["source_url"]
        assert row["title"] == row["title"].strip() and "&amp;" not in row["title"]
        matched = (
            json.loads(row["matched_skills"])
            if isinstance(row["matched_skills"], str)
            else row["matched_skills"]
        )
        assert row["match_score"] == round(100 * len(matched) / 3)
    ramp = [r for r in rows if r["source"] == "ashby" and r["title"] == "Security Engineer, Cloud"]
    assert [(r["salary_min"], r["salary_max"], r["salary_currency"]) for r in ramp] == [
        (211400, 290600, "USD")
    ]
    assert any(r["match_score"] > 0 for r in rows)
    fetched = {kind: stack.requests(kind) for kind in KINDS}
    assert fetched == {
        "remoteok": 1,
        "weworkremotely": 3,  # one per category feed
        "remotive": 1,
        "greenhouse": 1,
        "lever": 1,
        "ashby": 1,
    }

    again = await stack.trigger({"userId": uid})
    second = await stack.finished(again)
    assert second["output"]["success"] is True
    assert second["output"]["newJobs"] == 0
    assert second["output"]["alreadySaved"] == out["newJobs"]
    assert len(await stack.fetch("SELECT id FROM jobs WHERE user_id=$1", uuid.UUID(uid))) == len(
        rows
    )
    assert {kind: stack.requests(kind) for kind in KINDS} == fetched


async def test_duplicates_across_boards_and_concurrent_runs_saved_once(stack: Stack) -> None:
    """The same job on two boards (same URL with tracking parameters, or same title and
    company under another URL) is saved once; so is every job of two concurrent runs."""
    remoteok = json.loads(
        (
            stack.boards["remoteok"].app.fixtures_dir
            / "remoteok/remoteok_api_2026-03-17_trimmed60.json"
        ).read_bytes()
    )
    job = next(j for j in remoteok[1:] if "engineer" in j["position"].lower() and j["company"])
    copies = {
        "00-warning": "x",
        "jobs": [
            {  # same URL, tracking parameters and an upper-case host
                "id": 1,
                "url": job["url"].replace("remoteOK.com", "REMOTEOK.COM")
                + "?utm_source=remotive&ref=x",
                "title": job["position"],
                "company_name": "Someone Else",
                "publication_date": "2026-03-16T00:00:00",
                "description": "<p>engineer</p>",
            },
            {  # same title and company, escaped, another URL
                "id": 2,
                "url": "https://remotive.com/remote-jobs/software-dev/copy-2",
                "title": job["position"].replace("&", "&amp;") + " ",
                "company_name": f"{job['company']} Inc.",
                "publication_date": "2026-03-16T00:00:00",
                "description": "<p>engineer</p>",
            },
            {
                "id": 3,
                "url": "https://remotive.com/remote-jobs/software-dev/only-here-3",
                "title": "Platform Engineer",
                "company_name": "Only Here",
                "publication_date": "2026-03-16T00:00:00",
                "description": "<p>Python</p>",
            },
        ],
    }
    stack.boards["remotive"].control.script(times=5, json=copies)
    stack.start_discovery(1, DISCOVERY_SOURCES="remoteok,remotive")
    stack.start_discovery(2, DISCOVERY_SOURCES="remoteok,remotive")
    uid = await stack.user()
    a, b = await asyncio.gather(
        stack.trigger({"userId": uid}, "dup-a"), stack.trigger({"userId": uid}, "dup-b")
    )
    first, second = await asyncio.gather(stack.finished(a), stack.finished(b))
    assert first["status"] == second["status"] == "complete", (first, second)
    rows = await stack.fetch(
        "SELECT source, source_url, title FROM jobs WHERE user_id=$1", uuid.UUID(uid)
    )
    urls = [r["source_url"] for r in rows]
    assert len(urls) == len(set(urls))
    assert first["output"]["newJobs"] + second["output"]["newJobs"] == len(rows)
    remotive_rows = [r for r in rows if r["source"] == "remotive"]
    assert [r["title"] for r in remotive_rows] == ["Platform Engineer"]
    assert sum(1 for r in rows if r["title"] == job["position"].strip()) == 1
    assert first["output"]["duplicates"] == second["output"]["duplicates"] == 2
    assert stack.requests("remoteok") == 1 and stack.requests("remotive") == 1


async def test_one_board_down_and_every_board_down(stack: Stack) -> None:
    """One board failing is reported while the others are saved; every board failing is
    retried after a durable wait, and errors clearly when they stay down."""
    # A one-second snapshot period: each run here reads the boards afresh.
    stack.start_discovery(
        1, DISCOVERY_SOURCES="remoteok,remotive,greenhouse:nobody", DISCOVERY_SNAPSHOT_TTL="1"
    )
    stack.boards["remoteok"].control.script(times=1, status=503, body="down")
    uid = await stack.user()
    body = await stack.finished(await stack.trigger({"userId": uid}))
    assert body["status"] == "complete", body
    out = body["output"]
    assert out["success"] is True and out["sourcesSearched"] == ["remotive"]
    failed = {s["source"]: s for s in out["sources"] if s["status"] == "failed"}
    assert set(failed) == {"remoteok", "greenhouse:nobody"}
    assert failed["remoteok"]["error"] == "BoardUnavailableError"
    assert "503" in failed["remoteok"]["message"]
    assert failed["greenhouse:nobody"]["error"] == "BoardNotFoundError"
    assert "no such board" in failed["greenhouse:nobody"]["message"]
    assert out["newJobs"] > 0

    # Every board down for the first round only: the run waits and the second round works.
    # The next run must start in a new one-second snapshot period, or it would be served
    # the snapshot this run stored (a fast machine finishes a run within one second).
    await asyncio.sleep(1.1)
    uid2 = await stack.user()
    for kind in ("remoteok", "remotive"):
        stack.boards[kind].control.reset()
        stack.boards[kind].control.script(times=1, status=500, body="boom")
    # Another snapshot period is not needed: a failed fetch is never cached.
    body = await stack.finished(await stack.trigger({"userId": uid2}, "all-down-once"))
    assert body["status"] == "complete", body
    steps = {s["name"]: s["status"] for s in await stack.steps("all-down-once")}
    assert steps["fetch-remotive"] == "errored" and steps["fetch-remotive-round2"] == "complete"
    assert "all-sources-down-1" in steps
    assert body["output"]["success"] is True

    await asyncio.sleep(1.1)  # a new snapshot period again (see above)
    uid3 = await stack.user()
    for kind in ("remoteok", "remotive"):
        stack.boards[kind].control.reset()
        stack.boards[kind].control.script(times=10, status=502, body="bad gateway")
    body = await stack.finished(await stack.trigger({"userId": uid3}, "all-down"))
    assert body["status"] == "errored", body
    assert body["error"]["name"] == "AllSourcesFailedError"
    assert "every source failed 2 times" in body["error"]["message"]
    assert "remotive" in body["error"]["message"]


async def test_daily_limit(stack: Stack) -> None:
    """A tier allowing one run a day: the second run fetches nothing and says why."""
    stack.start_discovery(1, DISCOVERY_SOURCES="remotive")
    uid = await stack.user(daily_limit=1)
    first = await stack.finished(await stack.trigger({"userId": uid}, "limit-1"))
    assert first["output"]["success"] is True
    second = await stack.finished(await stack.trigger({"userId": uid}, "limit-2"))
    assert second["output"] == {
        "success": False,
        "error": "discovery_limit_exceeded",
        "used": 1,
        "limit": 1,
    }
    assert [s["name"] for s in await stack.steps("limit-2")] == ["check-discovery-limit"]
    unlimited = await stack.user()
    for n in range(3):
        body = await stack.finished(await stack.trigger({"userId": unlimited}, f"free-{n}"))
        assert body["output"]["success"] is True


async def test_search_criteria_override_the_profile(stack: Stack) -> None:
    """searchCriteria's keywords and remote flag win over the profile's roles."""
    stack.start_discovery(1, DISCOVERY_SOURCES="lever:matchgroup")
    uid = await stack.user(roles=["nurse"])
    body = await stack.finished(
        await stack.trigger(
            {"userId": uid, "searchCriteria": {"keywords": ["Android"], "remote": False}}
        )
    )
    rows = await stack.fetch("SELECT title, description FROM jobs WHERE user_id=$1", uuid.UUID(uid))
    assert body["output"]["newJobs"] == len(rows) > 0
    assert all("android" in (r["title"] + r["description"]).lower() for r in rows)
    assert len(rows) < 40  # the keyword filtered; the profile's "nurse" matched nothing

    bad = await stack.post("/trigger", {"workflow": "job-discovery", "params": {"user": uid}})
    assert bad.status_code == 400 and "userId" in bad.text, bad.text


async def fan_out(stack: Stack, users: int, page: int, kill_after: int | None) -> None:
    """Seed `users` users, fire the cron event (twice), optionally SIGKILL the service
    once `kill_after` runs exist, then require exactly one run per user."""
    conn = await asyncpg.connect(stack.dsn)
    try:
        ids = [uuid.uuid4() for _ in range(users)]
        await conn.executemany(
            "INSERT INTO profiles (user_id, preferred_roles, skills) "
            "VALUES ($1, $2::jsonb, $3::jsonb)",
            [(u, json.dumps(["engineer"]), json.dumps(["Python"])) for u in ids],
        )
        # Inactive users (no roles, no skills) get nothing.
        await conn.execute("INSERT INTO profiles (user_id) VALUES ($1)", uuid.uuid4())
    finally:
        await conn.close()
    extra = {
        "DISCOVERY_SOURCES": "remotive",
        "DISCOVERY_PAGE_SIZE": str(page),
        "WORKER_CONCURRENCY": "32",
    }
    service = stack.start_discovery(1, **extra)
    # One run first, so the board's snapshot is stored before the kill (a fetch killed in
    # flight is rightly fetched again, which would blur the one-request check).
    seed_run = await stack.trigger({"userId": str(ids[0])}, "seed-run")
    assert (await stack.finished(seed_run))["status"] == "complete"
    fired = await stack.post(
        "/e/scheduler", {"name": "cron/daily-discovery", "data": {}, "id": "cron-1"}
    )
    assert fired.status_code in (200, 201), fired.text
    daily = fired.json()["started"][0]["instanceId"]
    if kill_after is not None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        while len(await stack.job_discovery_instances()) < kill_after + 1:
            assert loop.time() < deadline, stack.logs()
            await asyncio.sleep(0.05)
        during = await stack.status(daily, "daily-discovery")
        service.kill()
        assert during["status"] != "complete"  # killed in the middle of the fan-out
        stack.start_discovery(2, **extra)
    budget = max(300.0, users * 1.5)  # generous: the box is shared
    body = await stack.finished(daily, "daily-discovery", timeout=budget)
    assert body["status"] == "complete", body
    assert body["output"]["usersFound"] == users
    # A second firing the same day (another event id) starts nothing new.
    refired = await stack.post(
        "/e/scheduler", {"name": "cron/daily-discovery", "data": {}, "id": "cron-2"}
    )
    again = await stack.finished(
        refired.json()["started"][0]["instanceId"], "daily-discovery", timeout=budget
    )
    assert again["output"]["usersFound"] == users
    day = body["output"]["day"]
    assert day == datetime.now(UTC).strftime("%Y-%m-%d")
    expected = {event_internal_id(f"daily-discovery:{u}:{day}") for u in ids} | {"seed-run"}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + budget
    while True:
        instances = await stack.job_discovery_instances()
        statuses = (
            [(await stack.status(i))["status"] for i in sorted(expected)]
            if instances == expected
            else []
        )
        if statuses and all(s == "complete" for s in statuses):
            break
        assert loop.time() < deadline, (len(instances), stack.logs())
        await asyncio.sleep(1)
    assert instances == expected  # one run per active user, none twice, nobody skipped
    if kill_after is not None:
        assert body["output"]["pages"] > 1 and len(instances) > kill_after
    saved = await stack.fetch("SELECT user_id, count(*) AS n FROM jobs GROUP BY user_id")
    assert len(saved) == users and len({r["n"] for r in saved}) == 1
    assert stack.requests("remotive") == 1


async def test_daily_fan_out_fired_twice_one_run_per_user(stack: Stack) -> None:
    """40 users in pages of 15: the cron event twice → 40 runs, one fetch of the board."""
    await fan_out(stack, users=40, page=15, kill_after=None)


async def test_sigkill_mid_fan_out_small(stack: Stack) -> None:
    """SIGKILL of the service while an 80-user fan-out is under way: exactly 80 runs."""
    await fan_out(stack, users=80, page=10, kill_after=25)


@pytest.mark.slow
async def test_sigkill_mid_fan_out_500(stack: Stack) -> None:
    """SIGKILL of the service in the middle of a 500-user fan-out: exactly 500 runs."""
    await fan_out(stack, users=500, page=50, kill_after=150)


async def test_200_users_one_fetch_per_board(stack: Stack) -> None:
    """200 users' runs in one period, across two replicas: one request per board."""
    stack.start_discovery(1, DISCOVERY_SOURCES="remoteok,remotive,greenhouse:stripe")
    stack.start_discovery(2, DISCOVERY_SOURCES="remoteok,remotive,greenhouse:stripe")
    users = [await stack.user() for _ in range(200)]
    events = [{"name": "job/discovery.requested", "data": {"userId": u}} for u in users]
    sent = await stack.post("/e/load", events)
    assert sent.status_code in (200, 201), sent.text
    instances = [s["instanceId"] for s in sent.json()["started"]]
    assert len(instances) == 200
    for instance in instances:
        body = await stack.finished(instance, timeout=300)
        assert body["status"] == "complete" and body["output"]["success"] is True, body
    assert {k: stack.requests(k) for k in ("remoteok", "remotive", "greenhouse")} == {
        "remoteok": 1,
        "remotive": 1,
        "greenhouse": 1,
    }
