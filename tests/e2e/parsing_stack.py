"""The parsing service's e2e stack: gateway and parsing as processes, real NATS and
PostgreSQL, local servers speaking the Anthropic, Supabase Storage and GitHub wire formats."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from shared.db.migrate import migrate
from shared.embedded import free_port
from tests.support.fakes import (
    SERVICE_KEY,
    AnthropicFake,
    FakeControl,
    GitHubFake,
    RunningFake,
    StorageFake,
    put_object,
)
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "e2e-token-parsing-0123456789"
ANTHROPIC_KEY = "sk-ant-parsing-e2e-secret"
GITHUB_TOKEN = "ghp_parsing_e2e_secret_0123456789"
MEDIA = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


@dataclass
class Stack:
    gateway_url: str
    dsn: str
    anthropic: FakeControl
    storage: FakeControl
    storage_url: str
    github: FakeControl
    env: dict[str, str]
    tmp: Path
    procs: list[Proc]

    def start_parsing(self, n: int = 1, *, claude: bool = False, **extra: str) -> Proc:
        env = dict(self.env)
        if claude:
            env["ANTHROPIC_API_KEY"] = ANTHROPIC_KEY
        env.update(extra)
        proc = spawn("services.parsing", env, self.tmp / f"parsing{len(self.procs)}-{n}.log")
        self.procs.append(proc)
        return proc

    async def post(self, path: str, body: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            return await client.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=30) as client:
            return await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})

    async def trigger(self, workflow: str, params: dict[str, Any]) -> str:
        response = await self.post("/trigger", {"workflow": workflow, "params": params})
        assert response.status_code == 200, response.text
        return str(response.json()["instanceId"])

    async def status(self, workflow: str, instance_id: str) -> dict[str, Any]:
        response = await self.post("/status", {"workflow": workflow, "instanceId": instance_id})
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def finished(
        self, workflow: str, instance_id: str, timeout: float = 120
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        body: dict[str, Any] = {}
        while loop.time() < deadline:
            body = await self.status(workflow, instance_id)
            if body["status"] in ("complete", "errored", "terminated"):
                return body
            await asyncio.sleep(0.2)
        logs = "\n".join(p.output()[-3000:] for p in self.procs)
        raise AssertionError(f"{instance_id} not finished: {body}\n{logs}")

    async def steps(self, workflow: str, instance_id: str) -> dict[str, dict[str, Any]]:
        response = await self.get(f"/workflows/{workflow}/instances/{instance_id}")
        assert response.status_code == 200, response.text
        return {step["name"]: step for step in response.json()["steps"]}

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def execute(self, sql: str, *args: Any) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def new_user(self, **profile: Any) -> uuid.UUID:
        """A user with a profile row (columns as given; the rest empty)."""
        user = uuid.uuid4()
        columns = ["user_id", *profile]
        values: list[Any] = [user]
        for value in profile.values():
            values.append(json.dumps(value) if isinstance(value, list) else value)
        placeholders = ", ".join(
            f"${i + 1}::jsonb" if isinstance(v, list) else f"${i + 1}"
            for i, v in enumerate([None, *profile.values()])
        )
        await self.execute(
            f"INSERT INTO profiles ({', '.join(columns)}) VALUES ({placeholders})", *values
        )
        return user

    async def upload(self, user: uuid.UUID, name: str, data: bytes, kind: str) -> dict[str, str]:
        """The file in storage and a `resumes` row: the params of a resume-parsing run."""
        path = f"{user}/{name}"
        put_object(self.storage, "resumes", path, data, MEDIA.get(kind, "application/pdf"))
        url = f"{self.storage_url}/storage/v1/object/resumes/{path}"
        rows = await self.fetch(
            "INSERT INTO resumes (user_id, name, original_file_url, original_file_type) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            user,
            name,
            url,
            kind,
        )
        return {
            "userId": str(user),
            "resumeId": str(rows[0]["id"]),
            "fileUrl": url,
            "fileType": kind,
        }

    async def profile(self, user: uuid.UUID) -> dict[str, Any]:
        [row] = await self.fetch("SELECT * FROM profiles WHERE user_id = $1", user)
        out = dict(row)
        for key in ("skills", "experience", "education", "portfolio_urls"):
            out[key] = json.loads(out[key]) if isinstance(out[key], str) else out[key]
        return out

    async def resume_row(self, resume_id: str) -> dict[str, Any]:
        [row] = await self.fetch("SELECT * FROM resumes WHERE id = $1", uuid.UUID(resume_id))
        out = dict(row)
        if isinstance(out["structured_data"], str):
            out["structured_data"] = json.loads(out["structured_data"])
        return out


@contextlib.asynccontextmanager
async def open_stack(
    nats_url: str, prefix: str, database_url: str, fixtures_dir: Path, tmp_path: Path
) -> AsyncIterator[Stack]:
    await migrate(database_url)
    anthropic = RunningFake(AnthropicFake(fixtures_dir)).start()
    storage = RunningFake(StorageFake(fixtures_dir)).start()
    github = RunningFake(GitHubFake(fixtures_dir)).start()
    common = {"NATS_URL": nats_url, "HOWLERHIRE_NAMESPACE": prefix, "LOG_LEVEL": "INFO"}
    port = free_port()
    gateway = spawn(
        "services.gateway",
        {**common, "WORKFLOWS_AUTH_TOKEN": TOKEN, "GATEWAY_PORT": str(port)},
        tmp_path / "gateway.log",
    )
    env = {
        **common,
        "DATABASE_URL": database_url,
        "SUPABASE_URL": storage.url,
        "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
        "ANTHROPIC_BASE_URL": anthropic.url,
        "GITHUB_API_URL": github.url,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "ACK_WAIT": "2",
        "PARSING_RETRY_DELAY": "0.2",
    }
    stack = Stack(
        f"http://127.0.0.1:{port}",
        database_url,
        anthropic.control,
        storage.control,
        storage.url,
        github.control,
        env,
        tmp_path,
        [gateway],
    )
    try:
        await wait_http(stack.gateway_url, gateway)
        yield stack
    finally:
        for proc in stack.procs:
            proc.kill()
        anthropic.stop()
        storage.stop()
        github.stop()
