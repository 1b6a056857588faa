"""An in-process resume-generation stack for the LLM tests: a real worker on the session's
nats-server, a migrated PostgreSQL database, the fake Anthropic server, real budgets."""
# ruff: noqa: RUF001  (real resumes and replies use en dashes)

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS

from services.resume.steps import ResumeDeps
from services.resume.workflows import resume_generation
from shared.ai import AISettings, ClaudeAI
from shared.ai.budget import Budgets, BudgetSettings
from shared.config import load_settings
from shared.db.migrate import migrate
from shared.db.postgres import PostgresRepository
from shared.email import EmailSettings, OutboxEmailSender
from shared.workflow import Instances, InstanceState, Registry
from tests.support.engine import engine_settings, prepare, running_worker, wait_for
from tests.support.fakes import AnthropicFake, FakeControl, RunningFake

ANALYSIS = {
    "requiredSkills": ["Python", "PostgreSQL", "Kubernetes"],
    "preferredSkills": ["Kafka"],
    "experienceYears": 5,
    "keyResponsibilities": ["Build backend services"],
    "cultureIndicators": ["remote-first"],
}
PROFILE_EXPERIENCE = [
    {
        "title": "Senior Backend Engineer",
        "company": "Acme Robotics GmbH",
        "location": "Munich",
        "startDate": "2019-03",
        "current": True,
        "description": "Built the fleet telemetry pipeline (Kafka, Go); cut p99 by 40%.",
        "skills": ["Go", "Kafka"],
    },
    {
        "title": "Software Engineer",
        "company": "Globex, Inc.",
        "startDate": "Jun 2016",
        "endDate": "Feb 2019",
        "description": "Python services on PostgreSQL; on-call for billing.",
        "skills": ["Python", "PostgreSQL"],
    },
]
# The user's own resume text (resumes.parsed_content): long enough that the prefix it
# ends (system prompt + profile + this) is cacheable.
ORIGINAL_RESUME = "\n".join(
    [
        "Zoë Müller-Łukasik — zoe.mueller@example.com — München, Germany",
        "EXPERIENCE",
        "Acme Robotics GmbH, Munich — Senior Backend Engineer, 03/2019 – present",
        *[
            f"- Telemetry work item {i}: designed, built and operated ingestion, storage and "
            "query services for the robot fleet in Go and Python, on Kafka and PostgreSQL, "
            "deployed on Kubernetes with careful capacity planning and on-call ownership."
            for i in range(1, 19)
        ],
        "Globex, Inc. — Software Engineer, 06/2016 – 02/2019",
        "- Billing services in Python on PostgreSQL; monthly invoice reconciliation.",
        "EDUCATION",
        "Technische Universität München — B.Sc. Informatik, 2012 – 2016",
    ]
)


def good_resume(name: str = "Zoë Müller-Łukasik", extra: str = "") -> str:
    """A reply that passes the resume gate for the seeded profile."""
    return (
        f"# {name}\n\nzoe.mueller@example.com · München, Germany\n\n## Summary\n\n"
        "Backend engineer with years of data-heavy services in Python and Go, most recently "
        "leading telemetry for a robotics fleet; owns services from the PostgreSQL schema to "
        "running them on Kubernetes, and is on call for what they build.\n\n"
        "## Skills\n\n- **Languages:** Python, Go, SQL\n- **Data:** PostgreSQL, Kafka\n"
        "- **Platform:** Kubernetes, Docker\n\n## Experience\n\n"
        f"### Senior Backend Engineer — Acme Robotics GmbH\n*Munich · Mar 2019 – Present*\n\n"
        "- Built the fleet telemetry pipeline on Kafka and Go, cutting p99 latency by 40%.\n"
        "- Designed the PostgreSQL schema for telemetry and the services that query it.\n"
        "- Led on-call for the telemetry platform and wrote the runbooks the team uses.\n"
        f"{extra}\n"
        "### Software Engineer — Globex Inc.\n*Jun 2016 – Feb 2019*\n\n"
        "- Wrote Python services on PostgreSQL for billing and its reporting.\n"
        "- Automated the monthly invoice reconciliation end to end.\n\n"
        "## Education\n\n**B.Sc. Informatik**, Technische Universität München, 2012 – 2016\n"
    )


@dataclass
class LlmStack:
    nc: NATS
    dsn: str
    fake: RunningFake
    instances: Instances
    budgets: Budgets
    deps: ResumeDeps

    @property
    def anthropic(self) -> FakeControl:
        return self.fake.control

    async def seed(
        self, *, description: str = "Python, PostgreSQL, Kubernetes. Kafka a plus."
    ) -> dict[str, str]:
        """A user with a profile, a default resume, a job and an application."""
        user = uuid.uuid4()
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                "INSERT INTO profiles (user_id, email, full_name, location, skills, experience, "
                "education) VALUES ($1, 'zoe.mueller@example.com', 'Zoë Müller-Łukasik', "
                "'München, Germany', $2::jsonb, $3::jsonb, $4::jsonb)",
                user,
                json.dumps(["Python", "PostgreSQL", "Kubernetes", "Go"]),
                json.dumps(PROFILE_EXPERIENCE),
                json.dumps(
                    [
                        {
                            "institution": "Technische Universität München",
                            "degree": "B.Sc.",
                            "field": "Informatik",
                            "startDate": "2012",
                            "endDate": "2016",
                        }
                    ]
                ),
            )
            await conn.execute(
                "INSERT INTO resumes (user_id, is_default, parsed_content) VALUES ($1, true, $2)",
                user,
                ORIGINAL_RESUME,
            )
            ids = await self.add_application(conn, user, description)
        finally:
            await conn.close()
        return ids

    async def add_application(
        self, conn: Any, user: uuid.UUID, description: str, title: str = "Backend Engineer"
    ) -> dict[str, str]:
        job = await conn.fetchval(
            "INSERT INTO jobs (user_id, title, company, description, source, source_url) "
            "VALUES ($1, $2, 'Initrode', $3, 'remoteok', $4) RETURNING id",
            user,
            title,
            description,
            f"https://example.com/jobs/{uuid.uuid4()}",
        )
        application = await conn.fetchval(
            "INSERT INTO job_applications (user_id, job_id, status) VALUES ($1, $2, "
            "'generating') RETURNING id",
            user,
            job,
        )
        return {"userId": str(user), "jobId": str(job), "applicationId": str(application)}

    async def another_application(self, ids: dict[str, str], description: str) -> dict[str, str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await self.add_application(conn, uuid.UUID(ids["userId"]), description)
        finally:
            await conn.close()

    async def run(
        self, ids: dict[str, str], instance_id: str, timeout: float = 90
    ) -> InstanceState:
        params = {k: ids[k] for k in ("userId", "jobId", "applicationId")}
        await self.instances.trigger(
            "resume-generation", {**params, "skipUsageCheck": True}, instance_id
        )
        return await wait_for(self.instances, "resume-generation", instance_id, timeout=timeout)

    async def application(self, ids: dict[str, str]) -> Any:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetchrow(
                "SELECT status, error_message, tailored_resume FROM job_applications WHERE id = $1",
                uuid.UUID(ids["applicationId"]),
            )
        finally:
            await conn.close()


def writer_requests(control: FakeControl) -> list[dict[str, Any]]:
    return [
        json.loads(r["body"])
        for r in control.requests("/v1/messages")
        if '"tool_choice"' not in r["body"]
    ]


def analysis_requests(control: FakeControl) -> list[dict[str, Any]]:
    return [
        json.loads(r["body"])
        for r in control.requests("/v1/messages")
        if '"tool_choice"' in r["body"]
    ]


@contextlib.asynccontextmanager
async def llm_stack(
    nc: NATS,
    nats_url: str,
    prefix: str,
    database_url: str,
    fixtures_dir: Path,
    tmp_path: Path,
    concurrency: int = 5,
    **env: str,
) -> AsyncIterator[LlmStack]:
    await migrate(database_url)
    environ = {
        "ANTHROPIC_API_KEY": "sk-ant-test-llm",
        "LLM_BUDGETS": "free=5,pro=20,premium=-1",
        **env,
    }
    settings = engine_settings(prefix, rate_limits=env.get("RATE_LIMITS", ""))
    registry = Registry([resume_generation.with_options(concurrency=concurrency)])
    instances = await prepare(nc, registry, settings)
    with RunningFake(AnthropicFake(fixtures_dir)) as fake:
        environ["ANTHROPIC_BASE_URL"] = fake.url
        ai = ClaudeAI(load_settings(AISettings, environ))
        budgets = await Budgets.open(nc, prefix, load_settings(BudgetSettings, environ))
        repo = await PostgresRepository.open(database_url)
        mailer = OutboxEmailSender(
            load_settings(EmailSettings, {"EMAIL_OUTBOX_DIR": str(tmp_path)})
        )
        deps = ResumeDeps(repo=repo, ai=ai, mailer=mailer, retry_delay=0.1, budgets=budgets)
        try:
            async with running_worker(nats_url, registry, settings, deps):
                yield LlmStack(nc, database_url, fake, instances, budgets, deps)
        finally:
            await repo.aclose()
            await ai.aclose()
