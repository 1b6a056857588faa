"""resume-generation end to end: the gateway and the resume service as their own processes,
real NATS and PostgreSQL, local servers speaking the Anthropic and Resend wire formats."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats.js.errors
import pytest

from shared.db.migrate import migrate
from shared.embedded import free_port
from tests.support.fakes import AnthropicFake, FakeControl, ResendFake, RunningFake
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "e2e-token-0123456789"
ANALYSIS = {
    "requiredSkills": ["Python", "PostgreSQL", "Kubernetes"],
    "preferredSkills": ["Docker", "Go"],
    "experienceYears": 5,
    "keyResponsibilities": ["Build backend services"],
    "cultureIndicators": ["remote-first"],
}
# A reply the resume quality gate accepts for the seeded profile (shared/ai/gates.py).
RESUME = (
    "# Ada Lovelace\n\nada@example.com\n\n## Summary\n\nBackend engineer who builds Python "
    "services on PostgreSQL and ships them in Docker, with years of production work at "
    "Analytical Engines and a mathematics background.\n\n"
    "## Experience\n\n### Senior Engineer, Analytical Engines Ltd (2019-2024)\n\n"
    "- Built Python services on PostgreSQL and Docker.\n"
    "- Owned the services from design to production, including monitoring and on-call.\n"
    "- Worked with product and data teams to turn requirements into backend features.\n\n"
    "## Skills\n\n- Python\n- PostgreSQL\n- Docker\n\n"
    "## Education\n\nBSc Mathematics, University of London\n"
)


@dataclass
class Stack:
    gateway_url: str
    dsn: str
    anthropic: FakeControl
    resend: FakeControl
    service_env: dict[str, str]
    tmp: Path
    services: list[Proc]

    def start_resume_service(self, n: int) -> Proc:
        proc = spawn("services.resume", self.service_env, self.tmp / f"resume{n}.log")
        self.services.append(proc)
        return proc

    async def post(self, path: str, body: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            return await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    async def status(self, instance_id: str) -> dict[str, Any]:
        response = await self.post(
            "/status", {"workflow": "resume-generation", "instanceId": instance_id}
        )
        assert response.status_code == 200, response.text
        return response.json()

    async def finished(self, instance_id: str, timeout: float = 90) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            body = await self.status(instance_id)
            if body["status"] in ("complete", "errored", "terminated"):
                return body
            await asyncio.sleep(0.2)
        logs = "\n".join(p.output()[-3000:] for p in self.services)
        raise AssertionError(f"{instance_id} not finished: {body}\n{logs}")

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


@pytest.fixture
async def stack(nats_url, prefix, database_url, fixtures_dir, tmp_path) -> AsyncIterator[Stack]:
    await migrate(database_url)
    anthropic = RunningFake(AnthropicFake(fixtures_dir)).start()
    resend = RunningFake(ResendFake(fixtures_dir)).start()
    common = {"NATS_URL": nats_url, "HOWLERHIRE_NAMESPACE": prefix, "LOG_LEVEL": "INFO"}
    port = free_port()
    gateway = spawn(
        "services.gateway",
        {**common, "WORKFLOWS_AUTH_TOKEN": TOKEN, "GATEWAY_PORT": str(port)},
        tmp_path / "gateway.log",
    )
    service_env = {
        **common,
        "DATABASE_URL": database_url,
        "ACK_WAIT": "2",
        "ANTHROPIC_API_KEY": "sk-ant-e2e-secret",
        "ANTHROPIC_BASE_URL": anthropic.url,
        "RESEND_API_KEY": "re_e2e_secret",
        "RESEND_API_URL": resend.url,
        "EMAIL_FROM": "HowlerHire <jobs@example.com>",
        "RESUME_RETRY_DELAY": "0.2",
    }
    stack = Stack(
        f"http://127.0.0.1:{port}",
        database_url,
        anthropic.control,
        resend.control,
        service_env,
        tmp_path,
        [gateway],
    )
    try:
        await wait_http(stack.gateway_url, gateway)
        yield stack
    finally:
        for proc in stack.services:
            proc.kill()
        anthropic.stop()
        resend.stop()


async def seed(stack: Stack, *, ready_this_week: int = 0) -> dict[str, str]:
    """A user with a profile, a job and an application being generated."""
    user, other = uuid.uuid4(), uuid.uuid4()
    conn = await asyncpg.connect(stack.dsn)
    try:
        await conn.execute(
            "INSERT INTO profiles (user_id, email, full_name, skills, experience, education) "
            "VALUES ($1, 'ada@example.com', 'Ada Lovelace', $2::jsonb, $3::jsonb, $4::jsonb)",
            user,
            json.dumps(["Python", "PostgreSQL", "Docker"]),
            json.dumps(
                [
                    {
                        "title": "Senior Engineer",
                        "company": "Analytical Engines Ltd",
                        "startDate": "2019-01",
                        "endDate": "2024-06",
                        "description": "Built Python services",
                        "skills": ["Python"],
                    }
                ]
            ),
            json.dumps(
                [{"institution": "University of London", "degree": "BSc", "field": "Mathematics"}]
            ),
        )
        job = await conn.fetchval(
            "INSERT INTO jobs (user_id, title, company, description, source, source_url) "
            "VALUES ($1, 'Backend Engineer', 'Globex', 'Python, PostgreSQL, Kubernetes.', "
            "'remoteok', $2) RETURNING id",
            user,
            f"https://example.com/jobs/{uuid.uuid4()}",
        )
        others_job = await conn.fetchval(
            "INSERT INTO jobs (user_id, title, source, source_url) VALUES ($1, 'Secret job', "
            "'remoteok', 'https://example.com/secret') RETURNING id",
            other,
        )
        application = await conn.fetchval(
            "INSERT INTO job_applications (user_id, job_id, status) VALUES ($1, $2, "
            "'generating') RETURNING id",
            user,
            job,
        )
        for _ in range(ready_this_week):
            await conn.execute(
                "INSERT INTO job_applications (user_id, job_id, status, created_at) "
                "VALUES ($1, $2, 'ready', $3)",
                user,
                job,
                datetime.now(UTC),
            )
    finally:
        await conn.close()
    return {
        "userId": str(user),
        "jobId": str(job),
        "applicationId": str(application),
        "othersJobId": str(others_job),
    }


def analysis_requests(control: FakeControl) -> list[dict[str, Any]]:
    return [r for r in control.requests("/v1/messages") if '"tool_choice"' in (r["body"] or "")]


def writer_requests(control: FakeControl) -> list[dict[str, Any]]:
    return [r for r in control.requests("/v1/messages") if '"tool_choice"' not in (r["body"] or "")]


async def test_happy_path_through_inngest_send_and_trigger(stack):
    """workflows.send and /trigger both lead to a ready application, scores and one email."""
    stack.start_resume_service(1)
    ids = await seed(stack)
    # The second user's job is the same posting: its analysis comes from the step cache.
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=2, text=RESUME)
    data = {k: ids[k] for k in ("userId", "jobId", "applicationId")}
    sent = await stack.post("/e/web-app", {"name": "resume/generation.requested", "data": data})
    assert sent.status_code in (200, 201), sent.text
    instance = sent.json()["started"][0]["instanceId"]
    body = await stack.finished(instance)
    assert body["status"] == "complete", body
    output = body["output"]
    # 2 of 3 required (Python, PostgreSQL), 1 of 2 preferred (Docker): round(70*2/3 + 30/2)
    assert output["success"] is True
    assert output["matchScore"] == 62
    assert output["atsScore"] == 60  # Python, PostgreSQL, Docker of five keywords
    assert output["resumeLength"] == len(RESUME.strip())
    assert 0 < output["qualityScore"] <= 100
    [app] = await stack.fetch(
        "SELECT * FROM job_applications WHERE id = $1", uuid.UUID(ids["applicationId"])
    )
    assert app["status"] == "ready" and app["tailored_resume"] == RESUME.strip()
    assert app["generation_model"]
    [job] = await stack.fetch("SELECT * FROM jobs WHERE id = $1", uuid.UUID(ids["jobId"]))
    assert (job["match_score"], job["ats_score"]) == (62, 60)
    assert json.loads(job["missing_required_skills"]) == ["Kubernetes"]
    assert json.loads(job["missing_preferred_skills"]) == ["Go"]
    emails = stack.resend.requests("/emails")
    assert len(emails) == 1
    assert emails[0]["headers"]["idempotency-key"] == f"resume-ready:{ids['applicationId']}"

    second = await seed(stack)
    triggered = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {k: second[k] for k in ("userId", "jobId", "applicationId")},
        },
    )
    assert triggered.status_code == 200, triggered.text
    assert triggered.json()["success"] is True
    done = await stack.finished(triggered.json()["instanceId"])
    assert done["status"] == "complete" and done["output"]["success"] is True
    assert done["output"]["needsReview"] is False
    assert (
        len(analysis_requests(stack.anthropic)) == 1 and len(writer_requests(stack.anthropic)) == 2
    )
    assert done["usage"]["calls"] == 1 and done["usage"]["cost_usd"] > 0


async def test_usage_limit_and_skip_usage_check(stack):
    """Five ready this week on the free tier: limit_exceeded; skipUsageCheck generates."""
    stack.start_resume_service(1)
    ids = await seed(stack, ready_this_week=5)
    params = {k: ids[k] for k in ("userId", "jobId", "applicationId")}
    limited = await stack.post("/trigger", {"workflow": "resume-generation", "params": params})
    body = await stack.finished(limited.json()["instanceId"])
    assert body["status"] == "complete"
    assert body["output"] == {"success": False, "error": "usage_limit_exceeded"}
    [app] = await stack.fetch(
        "SELECT status, error_message FROM job_applications WHERE id=$1",
        uuid.UUID(ids["applicationId"]),
    )
    assert (app["status"], app["error_message"]) == ("limit_exceeded", "Weekly limit reached (5/5)")
    assert stack.anthropic.requests("/v1/messages") == []

    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=1, text=RESUME)
    skipped = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {**params, "skipUsageCheck": True},
            "instanceId": "skip-1",
        },
    )
    body = await stack.finished(skipped.json()["instanceId"])
    assert body["output"]["success"] is True


async def test_another_users_job_fails_cleanly(stack):
    """A job id of another user: the instance errors, the application is failed, no leak."""
    stack.start_resume_service(1)
    ids = await seed(stack)
    params = {
        "userId": ids["userId"],
        "jobId": ids["othersJobId"],
        "applicationId": ids["applicationId"],
    }
    response = await stack.post("/trigger", {"workflow": "resume-generation", "params": params})
    body = await stack.finished(response.json()["instanceId"])
    assert body["status"] == "errored"
    assert body["error"]["name"] == "NonRetryableError"
    assert "not found for this user" in body["error"]["message"]
    assert "Secret job" not in json.dumps(body)
    [app] = await stack.fetch(
        "SELECT status, error_message FROM job_applications WHERE id=$1",
        uuid.UUID(ids["applicationId"]),
    )
    assert app["status"] == "failed" and "not found for this user" in app["error_message"]
    assert stack.anthropic.requests("/v1/messages") == []


async def test_analysis_reply_not_json_is_retried_then_fails_clearly(stack):
    """A chatty non-JSON analysis reply, every time: retried to the limit, then failed."""
    stack.start_resume_service(1)
    ids = await seed(stack)
    stack.anthropic.script(times=10, text="Sure! Here are my thoughts on this role...")
    response = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {k: ids[k] for k in ("userId", "jobId", "applicationId")},
        },
    )
    body = await stack.finished(response.json()["instanceId"])
    assert body["status"] == "errored"
    assert body["error"]["name"] == "MalformedReplyError"
    assert "Sure! Here are my thoughts" in body["error"]["message"]
    assert len(analysis_requests(stack.anthropic)) == 4  # 1 + 3 retries
    [app] = await stack.fetch(
        "SELECT status, error_message FROM job_applications WHERE id=$1",
        uuid.UUID(ids["applicationId"]),
    )
    assert app["status"] == "failed" and "Sure! Here are my thoughts" in app["error_message"]


async def test_rate_limit_then_success_honours_retry_after(stack):
    """A 429 with retry-after 2 on analysis: the next try waits at least 2 s, then succeeds."""
    stack.start_resume_service(1)
    ids = await seed(stack)
    stack.anthropic.fail_next(
        1, 429, retry_after=2, fixture="anthropic/error_429_rate_limit_error.json"
    )
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=1, text=RESUME)
    response = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {k: ids[k] for k in ("userId", "jobId", "applicationId")},
        },
    )
    body = await stack.finished(response.json()["instanceId"])
    assert body["status"] == "complete", body
    tries = analysis_requests(stack.anthropic)
    assert len(tries) == 2
    assert tries[1]["time"] - tries[0]["time"] >= 2.0


async def test_sigkill_during_writing_replacement_finishes_once(stack):
    """SIGKILL mid-writing: a new process finishes; analysis is not repeated; one ready
    application and one email."""
    first = stack.start_resume_service(1)
    ids = await seed(stack)
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=1, text=RESUME, delay=30)  # the writer hangs: kill it there
    stack.anthropic.script(times=1, text=RESUME)
    response = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {k: ids[k] for k in ("userId", "jobId", "applicationId")},
        },
    )
    instance = response.json()["instanceId"]
    for _ in range(600):
        if writer_requests(stack.anthropic):
            break
        await asyncio.sleep(0.05)
    assert writer_requests(stack.anthropic), first.output()
    first.kill()
    stack.start_resume_service(2)
    body = await stack.finished(instance)
    assert body["status"] == "complete", body
    assert len(analysis_requests(stack.anthropic)) == 1
    assert len(writer_requests(stack.anthropic)) == 2
    ready = await stack.fetch(
        "SELECT id FROM job_applications WHERE user_id=$1 AND status='ready'",
        uuid.UUID(ids["userId"]),
    )
    assert len(ready) == 1
    assert len(stack.resend.requests("/emails")) == 1
    sent = await stack.fetch(
        "SELECT count(*) AS n FROM email_send_history WHERE user_id=$1", uuid.UUID(ids["userId"])
    )
    assert sent[0]["n"] == 1


async def test_secrets_never_leave_the_process(stack, nats_url, prefix):
    """With upstreams failing (401, 500), the API keys appear in no log, response, stream
    message or instance record."""
    from shared.bus import Names, connect

    stack.start_resume_service(1)
    ids = await seed(stack)
    stack.anthropic.fail_next(1, 500, json={"type": "error", "error": {"type": "api_error"}})
    stack.anthropic.fail_next(10, 401, fixture="anthropic/error_400_invalid_request_error.json")
    response = await stack.post(
        "/trigger",
        {
            "workflow": "resume-generation",
            "params": {k: ids[k] for k in ("userId", "jobId", "applicationId")},
        },
    )
    body = await stack.finished(response.json()["instanceId"])
    assert body["status"] == "errored"
    secrets = ("sk-ant-e2e-secret", "re_e2e_secret", TOKEN)
    texts = [json.dumps(body), *(proc.output() for proc in stack.services)]
    names = Names(prefix)
    nc = await connect(nats_url, "leak-check", attempts=3)
    try:
        js = nc.jetstream()
        read = 0
        for stream in (names.stream, f"KV_{names.state_bucket}"):
            info = await js.stream_info(stream)
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                try:
                    raw = await js.get_msg(stream, seq)
                except nats.js.errors.APIError:  # a sequence replaced by a later revision
                    continue
                read += 1
                texts.append((raw.data or b"").decode("utf-8", "replace"))
    finally:
        await nc.drain()
    assert read >= 2  # the start message and the instance record at least
    for text in texts:
        for secret in secrets:
            assert secret not in text


async def test_postgres_down_at_start_and_mid_run(stack, postgres_server):
    """PostgreSQL down when the service starts: it says so and waits. Stopped again for
    4 s while generations run: every one completes once."""
    if postgres_server is None:
        pytest.skip("needs the session's own PostgreSQL (TEST_DATABASE_URL is set)")
    runs = []
    for _ in range(5):
        ids = await seed(stack)
        runs.append(ids)
    await asyncio.to_thread(postgres_server.stop)
    service = stack.start_resume_service(1)
    try:
        for _ in range(300):
            if "a dependency is unreachable" in service.output():
                break
            await asyncio.sleep(0.1)
        assert "a dependency is unreachable" in service.output(), service.output()
        assert service.alive()
    finally:
        await asyncio.to_thread(postgres_server.start)
    for _ in range(600):
        if "worker started" in service.output():
            break
        await asyncio.sleep(0.1)
    assert "worker started" in service.output(), service.output()
    instances = []
    # The five jobs are one posting: one analysis (the step cache), five writings.
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=5, text=RESUME, delay=1.0)
    for ids in runs:
        response = await stack.post(
            "/trigger",
            {
                "workflow": "resume-generation",
                "params": {k: ids[k] for k in ("userId", "jobId", "applicationId")},
            },
        )
        instances.append(response.json()["instanceId"])
    await asyncio.sleep(0.5)
    await asyncio.to_thread(postgres_server.stop)
    await asyncio.sleep(4)
    await asyncio.to_thread(postgres_server.start)
    for ids, instance in zip(runs, instances, strict=True):
        body = await stack.finished(instance, timeout=180)
        assert body["status"] == "complete", body
        rows = await stack.fetch(
            "SELECT status FROM job_applications WHERE user_id=$1 AND (status <> 'ready' OR id=$2)",
            uuid.UUID(ids["userId"]),
            uuid.UUID(ids["applicationId"]),
        )
        assert [r["status"] for r in rows] == ["ready"]
        sent = await stack.fetch(
            "SELECT count(*) AS n FROM email_send_history WHERE user_id=$1",
            uuid.UUID(ids["userId"]),
        )
        assert sent[0]["n"] == 1
    # One email per application: a send retried because the outage hit between the send
    # and its record carries the same Idempotency-Key, which Resend answers once.
    keys = {r["headers"]["idempotency-key"] for r in stack.resend.requests("/emails")}
    assert len(keys) == 5
