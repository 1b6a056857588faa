"""`howlerhire up` parses a resume saved under var/storage/ offline, with no account."""

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
import pytest

from shared.client import WorkflowsClient
from shared.embedded import free_port
from tests.support.procs import REPO_ROOT, Proc


@pytest.mark.slow
async def test_up_parses_a_file_from_var_storage(tmp_path: Path, fixtures_dir: Path) -> None:
    """A DOCX copied to var/storage/resumes/<user>/ is parsed into the profile by `up`."""
    nats_port, pg_port = free_port(), free_port()
    env = {
        "HOWLERHIRE_NATS_PORT": str(nats_port),
        "HOWLERHIRE_NATS_MONITOR_PORT": str(free_port()),
        "HOWLERHIRE_PG_PORT": str(pg_port),
        "GATEWAY_PORT": str(free_port()),
        "NATS_URL": "",
        "DATABASE_URL": "",
        "SUPABASE_URL": "",
        "ANTHROPIC_API_KEY": "",
        "WORKFLOWS_AUTH_TOKEN": "",
    }
    var = tmp_path / "var"
    log = tmp_path / "stack.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "up", "--data-dir", str(var)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Proc(popen, log)
    user = uuid.uuid4()
    try:
        for _ in range(600):
            if stack.output().count("worker started") >= 2 and (var / "gateway-url").is_file():
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"the stack did not start in 60 s: {stack.output()[-4000:]}")
        docx = (fixtures_dir / "resumes" / "john_doe_simple.docx").read_bytes()
        target = var / "storage" / "resumes" / str(user) / "cv.docx"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(docx)
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres")
        try:
            await conn.execute("INSERT INTO profiles (user_id) VALUES ($1)", user)
            resume_id = await conn.fetchval(
                "INSERT INTO resumes (user_id) VALUES ($1) RETURNING id", user
            )
        finally:
            await conn.close()
        # `up` runs NATS with authorization and seals personal data: drive it as the web
        # app does, through the gateway with the token it wrote to var/.
        url = (var / "gateway-url").read_text().strip()
        token = (var / "auth-token").read_text().strip()
        params = {
            "userId": str(user),
            "resumeId": str(resume_id),
            "fileUrl": f"{user}/cv.docx",
            "fileType": "docx",
        }
        async with WorkflowsClient(url, token) as client:
            await client.trigger("resume-parsing", params, "parse-1")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            done = await client.get_status("resume-parsing", "parse-1")
            while done.status not in ("complete", "errored", "terminated"):
                assert loop.time() < deadline, f"still {done.status}: {stack.output()[-4000:]}"
                await asyncio.sleep(0.3)
                done = await client.get_status("resume-parsing", "parse-1")
        assert done.status == "complete", stack.output()[-4000:]
        assert done.output["model"] == "offline" and done.output["experienceCount"] == 2
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{pg_port}/postgres")
        try:
            row = await conn.fetchrow("SELECT * FROM profiles WHERE user_id = $1", user)
        finally:
            await conn.close()
        assert row["full_name"] == "John Doe"
        assert "FastAPI" in json.loads(row["skills"])
    finally:
        stack.popen.send_signal(signal.SIGTERM)
        code = stack.wait(90)
    assert code == 0, stack.output()[-4000:]
