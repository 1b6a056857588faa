"""Erasure on the whole stack (`howlerhire up --demo`): every workflow for two users, one erased.

Then every message of every stream and every KV value (buckets are streams) is searched
for the erased user's e-mail, name and resume text: none is left readable. The other
user's data reads back and their new runs complete; a second erasure (the CLI) finds
nothing; the offline outbox keeps only the other user's emails.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import nats
import nats.js.errors

from shared.demo import EMAIL, GITHUB_HANDLE, USER_ID, examples
from shared.natsauth import ADMIN, password_variable, user_url
from tests.e2e.test_stack import _ports, _run, _start_up, _wait_for_table, pg_cache  # noqa: F401
from tests.support.engine import all_streams
from tests.support.procs import REPO_ROOT

GRACE = str(uuid.uuid5(uuid.NAMESPACE_URL, "howlerhire-test-grace"))
GRACE_RESUME = str(uuid.uuid5(uuid.NAMESPACE_URL, "howlerhire-test-grace-resume"))
GRACE_JOB = str(uuid.uuid5(uuid.NAMESPACE_URL, "howlerhire-test-grace-job"))
GRACE_APP = str(uuid.uuid5(uuid.NAMESPACE_URL, "howlerhire-test-grace-app"))
GRACE_EMAIL = "grace@example.net"
# What the demo seeds for Ada, and what her resume (shared/demo.py) says.
ADA_NEEDLES = [EMAIL.encode(), b"Ada Lovelace", b"Analytical Engines Ltd"]


async def _seed_grace(database_url: str, storage: Path) -> None:
    import docx

    document = docx.Document()
    document.add_heading("Grace Hopper", 0)
    document.add_paragraph(f"Staff Compiler Engineer · Arlington · {GRACE_EMAIL}")
    document.add_heading("Experience", 1)
    document.add_paragraph("Harvard Computation Lab — COBOL designer, 2015-2025")
    document.add_heading("Skills", 1)
    document.add_paragraph("Python, PostgreSQL, compilers, NATS, Kubernetes")
    path = storage / "resumes" / GRACE / "resume.docx"
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save(str(path))
    prefs = {"jobMatches": True, "resumeReady": True, "weeklySummary": True}
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO profiles (user_id, email, full_name, headline, location,
                   github_handle, skills, preferred_roles, remote_preference,
                   email_preferences, onboarding_completed)
               VALUES ($1, $2, 'Grace Hopper', 'Staff Engineer', 'Arlington', $3,
                   '["Python", "PostgreSQL"]'::jsonb, '["Backend Engineer"]'::jsonb,
                   'remote', $4::jsonb, true)""",
            uuid.UUID(GRACE),
            GRACE_EMAIL,
            GITHUB_HANDLE,
            json.dumps(prefs),
        )
        await conn.execute(
            """INSERT INTO resumes (id, user_id, name, is_default, original_file_url,
                   original_file_name, original_file_type)
               VALUES ($1, $2, 'Grace', true, $3, 'resume.docx', 'docx')""",
            uuid.UUID(GRACE_RESUME),
            uuid.UUID(GRACE),
            f"/storage/v1/object/resumes/{GRACE}/resume.docx",
        )
        await conn.execute(
            """INSERT INTO jobs (id, user_id, source, source_url, title, company, location,
                   is_remote, description, requirements, status, match_score, created_at,
                   discovered_at)
               VALUES ($1, $2, 'manual', 'https://example.com/jobs/g', 'Python Engineer',
                   'Fabrikam', 'Remote', true, 'Python and PostgreSQL, durable jobs.',
                   '["Python", "PostgreSQL"]'::jsonb, 'saved', 70,
                   now() - interval '7 days', now() - interval '7 days')""",
            uuid.UUID(GRACE_JOB),
            uuid.UUID(GRACE),
        )
        await conn.execute(
            """INSERT INTO job_applications (id, user_id, job_id, resume_id, status)
               VALUES ($1, $2, $3, $4, 'generating')""",
            uuid.UUID(GRACE_APP),
            uuid.UUID(GRACE),
            uuid.UUID(GRACE_JOB),
            uuid.UUID(GRACE_RESUME),
        )
    finally:
        await conn.close()


def _params(user: str) -> dict[str, dict[str, object]]:
    if user == USER_ID:
        return examples(f"/storage/v1/object/resumes/{USER_ID}/resume.docx")
    return {
        "resume-parsing": {
            "userId": GRACE,
            "resumeId": GRACE_RESUME,
            "fileUrl": f"/storage/v1/object/resumes/{GRACE}/resume.docx",
            "fileType": "docx",
        },
        "resume-generation": {"userId": GRACE, "jobId": GRACE_JOB, "applicationId": GRACE_APP},
        "profile-sync": {"userId": GRACE, "githubHandle": GITHUB_HANDLE},
        "job-discovery": {
            "userId": GRACE,
            "searchCriteria": {"keywords": ["python"], "location": "Remote", "remote": True},
        },
        "email-unsubscribe": {"userId": GRACE, "emailType": "weekly_summary"},
    }


async def _scan(url: str, needles: list[bytes]) -> dict[bytes, list[str]]:
    nc = await nats.connect(url)
    found: dict[bytes, list[str]] = {n: [] for n in needles}
    try:
        js = nc.jetstream()
        for info in await all_streams(js):
            name = info.config.name or ""
            for seq in range(max(1, info.state.first_seq), info.state.last_seq + 1):
                try:
                    msg = await js.get_msg(name, seq)
                except nats.js.errors.NotFoundError:
                    continue
                blob = (msg.data or b"") + repr(msg.headers or {}).encode()
                for needle in needles:
                    if needle in blob:
                        found[needle].append(f"{name}#{seq} {msg.subject}")
    finally:
        await nc.close()
    return found


async def test_erasing_one_user_leaves_nothing_readable_and_spares_the_other(
    tmp_path: Path,
    pg_cache: str,  # noqa: F811
) -> None:
    data = tmp_path / "var"
    env = {**_ports(), "HOWLERHIRE_PG_CACHE": pg_cache, "DATA_MASTER_KEYS": ""}
    stack = _start_up(data, tmp_path / "up.log", env, "--demo")
    try:
        await asyncio.to_thread(_wait_for_table, stack)
        gateway = f"http://127.0.0.1:{env['GATEWAY_PORT']}"
        database = f"postgresql://postgres@127.0.0.1:{env['HOWLERHIRE_PG_PORT']}/postgres"
        await _seed_grace(database, data / "storage")
        token = (data / "auth-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=30) as client:
            for _ in range(300):
                try:
                    if (await client.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            per_user = ("resume-parsing", "resume-generation", "profile-sync", "job-discovery")
            runs = [
                _run(client, wf, _params(user)[wf], f"e-{wf}-{user[:8]}")
                for user in (USER_ID, GRACE)
                for wf in per_user
            ]
            results = await asyncio.gather(*runs)
            tail = stack.output()[-3000:]
            for body in results:
                assert body["status"] == "complete", (body, tail)
            for wf in ("weekly-summary", "daily-discovery"):
                body = await _run(client, wf, {}, f"e-{wf}")
                assert body["status"] == "complete", (body, stack.output()[-3000:])
            for user in (USER_ID, GRACE):
                body = await _run(
                    client,
                    "email-unsubscribe",
                    _params(user)["email-unsubscribe"],
                    f"e-unsub-{user[:8]}",
                )
                assert body["status"] == "complete", body
            outbox = data / "outbox"
            before = {p.name: p.read_text() for p in outbox.glob("*.html")}
            assert any(EMAIL in text for text in before.values()), before.keys()
            assert any(GRACE_EMAIL in text for text in before.values()), before.keys()

            # Ada's progress, as her browser would see it, before she goes.
            minted = await client.post(
                "/progress-tokens",
                json={
                    "workflow": "resume-generation",
                    "instanceId": f"e-resume-generation-{USER_ID[:8]}",
                    "userId": USER_ID,
                },
            )
            assert minted.status_code == 201, minted.text
            async with httpx.AsyncClient(base_url=gateway, timeout=60) as browser:
                seen = (await browser.get(minted.json()["url"])).json()
                assert seen["outcome"] == "complete" and "matchScore" in seen["summary"], seen
                # Replayed from the start (an ordered consumer, as the gateway's NATS user).
                replay = await browser.get(
                    minted.json()["url"],
                    headers={"Accept": "text/event-stream", "Last-Event-ID": "0"},
                )
                assert replay.status_code == 200, replay.text
                labels = [
                    json.loads(line[len("data: ") :])["label"]
                    for line in replay.text.splitlines()
                    if line.startswith("data: ")
                ]
                assert "Writing your resume" in labels, replay.text
                assert replay.text.count("event: final") == 1, replay.text

            passwords = dict(
                line.split("=", 1)
                for line in (data / "nats-credentials.env").read_text().splitlines()
                if "=" in line
            )
            admin = user_url(
                f"nats://127.0.0.1:{env['HOWLERHIRE_NATS_PORT']}",
                ADMIN,
                passwords[password_variable(ADMIN)].strip(),
            )
            # The scan finds what is readable: before the erasure, Ada's parsed resume in the
            # step cache (shared across users by the file's digest), and nothing else.
            found = await _scan(admin, ADA_NEEDLES)
            assert found[ADA_NEEDLES[2]], found
            for needle in ADA_NEEDLES:  # the resume holds her name and e-mail too
                assert all("_step_cache" in where for where in found[needle]), found

            erased = await client.delete(f"/users/{USER_ID}/data")
            assert erased.status_code == 200, erased.text
            report = erased.json()
            assert report["deleted"]["dataKeys"] == 1, report
            # Four runs, the daily run's job-discovery start, and the unsubscribe.
            assert report["deleted"]["instances"] >= 6, report
            assert report["deleted"]["outboxFiles"] >= 2, report
            assert "web app" in report["notDeleted"]
            assert USER_ID not in erased.text

            left = await _scan(admin, ADA_NEEDLES)
            assert left == {n: [] for n in ADA_NEEDLES}, left
            after = [p.read_text() for p in outbox.glob("*.html")]
            assert not any(EMAIL in text for text in after)
            assert any(GRACE_EMAIL in text for text in after)

            # Grace: her records read back, and her new runs complete.
            grace = await client.post(
                "/status",
                json={
                    "workflow": "resume-generation",
                    "instanceId": f"e-resume-generation-{GRACE[:8]}",
                },
            )
            assert grace.json()["output"]["matchScore"] > 0, grace.json()
            again = await _run(
                client, "job-discovery", _params(GRACE)["job-discovery"], "e-grace-again"
            )
            assert again["status"] == "complete", again
            gone = await client.post(
                "/status",
                json={
                    "workflow": "resume-generation",
                    "instanceId": f"e-resume-generation-{USER_ID[:8]}",
                },
            )
            assert gone.status_code == 404, gone.text

        # The CLI, a second time: idempotent.
        cli_env = {
            **os.environ,
            "NATS_URL": admin,
            "DATA_MASTER_KEYS": (data / "data-master-keys").read_text().strip(),
            "EMAIL_OUTBOX_DIR": str(data / "outbox"),
        }
        repeat = subprocess.run(
            [sys.executable, "-m", "shared.cli", "erase-user", USER_ID],
            cwd=REPO_ROOT,
            env=cli_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert repeat.returncode == 0, repeat.stderr
        second = json.loads(repeat.stdout)
        assert second["alreadyErased"] is True and second["deleted"]["instances"] == 0, second
        assert second["requestedBy"].startswith("cli:")
    finally:
        stack.popen.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(stack.wait, 120)
    assert code == 0, stack.output()[-3000:]
