"""`howlerhire up --demo`: a demo user to try every workflow on, and one command per workflow.

The seed is idempotent (fixed ids, `ON CONFLICT DO NOTHING`), so a second `up --demo`
finds the same user. The try-it block is built from the catalog: every workflow gets a
CLI and a curl line; `EXAMPLES` holds the parameters that make sense for the demo user.
"""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path
from typing import Any

from shared.catalog import CATALOG

_NS = uuid.UUID("6f1c8f0e-3b4a-4d1e-9a57-4f4e2c1d0a11")


def _id(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


USER_ID = _id("user")
RESUME_ID = _id("resume")
JOB_IDS = (_id("job-1"), _id("job-2"))
APPLICATION_ID = _id("application-1")
EMAIL = "ada@example.com"
# A handle the offline stand-in knows (shared/standin/data/github.json).
GITHUB_HANDLE = "ada-howler"


def examples(resume_url: str) -> dict[str, dict[str, Any]]:
    """Workflow id → parameters for the demo user (wire names, as the web app sends)."""
    return {
        "resume-generation": {
            "userId": USER_ID,
            "jobId": JOB_IDS[0],
            "applicationId": APPLICATION_ID,
        },
        "resume-parsing": {
            "userId": USER_ID,
            "resumeId": RESUME_ID,
            "fileUrl": resume_url,
            "fileType": "docx",
        },
        "profile-sync": {"userId": USER_ID, "githubHandle": GITHUB_HANDLE},
        "job-discovery": {
            "userId": USER_ID,
            "searchCriteria": {"keywords": ["python"], "location": "Remote", "remote": True},
        },
        "daily-discovery": {},
        "weekly-summary": {},
        "email-unsubscribe": {"userId": USER_ID, "emailType": "weekly_summary"},
        "demo-greeting": {"name": "Ada", "pause_seconds": 1},
    }


def _resume_docx(path: Path) -> None:
    """A small real DOCX resume (python-docx), the kind users upload."""
    import docx

    document = docx.Document()
    document.add_heading("Ada Lovelace", 0)
    document.add_paragraph("Senior Python Engineer · London · ada@example.com")
    document.add_heading("Experience", 1)
    document.add_paragraph("Analytical Engines Ltd — Staff Engineer, 2019-2025")
    document.add_paragraph("Built durable job pipelines on NATS JetStream and PostgreSQL.")
    document.add_heading("Skills", 1)
    document.add_paragraph("Python, asyncio, PostgreSQL, NATS, Kubernetes, TypeScript")
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))


async def seed(database_url: str, data_dir: Path) -> dict[str, str]:
    """Create (once) the demo user: profile with email preferences, a resume file and its
    row, two saved jobs and an application awaiting its tailored resume."""
    import asyncpg

    resume_file = data_dir / "storage" / "resumes" / USER_ID / "resume.docx"
    if not resume_file.exists():
        _resume_docx(resume_file)
    resume_url = f"/storage/v1/object/resumes/{USER_ID}/resume.docx"
    prefs = {
        "jobMatches": True,
        "resumeReady": True,
        "weeklySummary": True,
        "applicationUpdates": True,
        "marketingEmails": False,
    }
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO profiles (user_id, email, full_name, headline, location,
                       github_handle, skills, preferred_roles, remote_preference,
                       email_preferences, onboarding_completed)
                   VALUES ($1, $2, 'Ada Lovelace', 'Senior Python Engineer', 'London',
                       $6, $3::jsonb, $4::jsonb, 'remote', $5::jsonb, true)
                   ON CONFLICT (user_id) DO NOTHING""",
                uuid.UUID(USER_ID),
                EMAIL,
                json.dumps(["Python", "asyncio", "PostgreSQL", "NATS", "Kubernetes"]),
                json.dumps(["Backend Engineer", "Platform Engineer"]),
                json.dumps(prefs),
                GITHUB_HANDLE,
            )
            await conn.execute(
                """INSERT INTO resumes (id, user_id, name, is_default, original_file_url,
                       original_file_name, original_file_type)
                   VALUES ($1, $2, 'Ada — main resume', true, $3, 'resume.docx', 'docx')
                   ON CONFLICT (id) DO NOTHING""",
                uuid.UUID(RESUME_ID),
                uuid.UUID(USER_ID),
                resume_url,
            )
            jobs = (
                (
                    JOB_IDS[0],
                    "Senior Python Engineer",
                    "Northwind",
                    "https://example.com/jobs/1",
                    80,
                ),
                (
                    JOB_IDS[1],
                    "Platform Engineer (NATS)",
                    "Contoso",
                    "https://example.com/jobs/2",
                    60,
                ),
            )
            for job_id, title, company, url, score in jobs:
                await conn.execute(
                    # Saved a week ago: last week (the one weekly-summary reports) has
                    # activity, so the demo's weekly summary email goes out.
                    """INSERT INTO jobs (id, user_id, source, source_url, title, company,
                           location, is_remote, description, requirements, status,
                           match_score, created_at, discovered_at)
                       VALUES ($1, $2, 'manual', $3, $4, $5, 'Remote', true, $6, $7::jsonb,
                           'saved', $8, now() - interval '7 days', now() - interval '7 days')
                       ON CONFLICT (id) DO NOTHING""",
                    uuid.UUID(job_id),
                    uuid.UUID(USER_ID),
                    url,
                    title,
                    company,
                    f"{company} is hiring a {title}: Python, asyncio, PostgreSQL and "
                    "message queues; you will own durable background processing.",
                    json.dumps(["Python", "PostgreSQL", "asyncio"]),
                    score,
                )
            await conn.execute(
                """INSERT INTO job_applications (id, user_id, job_id, resume_id, status)
                   VALUES ($1, $2, $3, $4, 'generating')
                   ON CONFLICT (id) DO NOTHING""",
                uuid.UUID(APPLICATION_ID),
                uuid.UUID(USER_ID),
                uuid.UUID(JOB_IDS[0]),
                uuid.UUID(RESUME_ID),
            )
    finally:
        await conn.close()
    return {"user_id": USER_ID, "resume_url": resume_url, "resume_file": str(resume_file)}


def try_it(gateway: str, token_file: Path, user: dict[str, str]) -> list[str]:
    """The "try it" block: one CLI and one curl command per workflow of the catalog."""
    params = examples(user["resume_url"])
    lines = [
        f"Try it (demo user {user['user_id']}, resume file {user['resume_file']}):",
        f"  export WORKFLOWS_AUTH_TOKEN=$(cat {shlex.quote(str(token_file))})",
    ]
    for spec in CATALOG:
        body = json.dumps(params.get(spec.id, {}), separators=(",", ":"))
        request = json.dumps({"workflow": spec.id, "params": params.get(spec.id, {})})
        lines += [
            f"  # {spec.id} ({spec.service})",
            f"  howlerhire trigger {spec.id} {shlex.quote(body)}",
            f'  curl -s -X POST {gateway}/trigger -H "Authorization: Bearer '
            f'$WORKFLOWS_AUTH_TOKEN" -H "Content-Type: application/json" '
            f"-d {shlex.quote(request)}",
        ]
    lines.append(
        f"  then: howlerhire watch WORKFLOW INSTANCE_ID (or show), or curl {gateway}/instances "
        '-H "Authorization: Bearer $WORKFLOWS_AUTH_TOKEN"'
    )
    return lines
