"""Browser tests: headless Debian chromium driven by Playwright's Python API, against the
real stack (the gateway and a worker as their own processes, the session's NATS).

Playwright's own browser download is never used (`playwright install` is not run): the
tests need `/usr/bin/chromium` (or CHROMIUM_PATH) and are skipped, saying how to get it,
where there is none. Screenshots go to tests/browser/artifacts/ (git-ignored).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.embedded import free_port
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "browser-token-0123456789abcdef"
ARTIFACTS = Path(__file__).parent / "artifacts"


def chromium_path() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in (
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    path = chromium_path()
    if path is None:
        pytest.skip(
            "no Chromium found for the browser tests: `apt-get install chromium` (Debian) "
            "or set CHROMIUM_PATH"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class UiStack:
    """The gateway and worker processes of one test, and how to reach them."""

    origin: str  # http://127.0.0.1:<port>
    base: str  # the dashboard's path, e.g. /ui or /jobs/ui
    env: dict[str, str]
    tmp: Path
    procs: list[Proc] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)

    @property
    def ui(self) -> str:
        return self.origin + self.base

    def start_worker(self) -> Proc:
        proc = spawn("tests.support.ui_app", self.env, self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(proc)
        self.procs.append(proc)
        return proc

    async def api(self, method: str, path: str, body: Any = None) -> Any:
        async with httpx.AsyncClient(base_url=self.origin, timeout=30) as client:
            response = await client.request(
                method, path, json=body, headers={"Authorization": f"Bearer {TOKEN}"}
            )
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    async def instance(self, workflow: str, instance_id: str) -> dict[str, Any]:
        found: dict[str, Any] = await self.api(
            "GET", f"/workflows/{workflow}/instances/{instance_id}"
        )
        return found

    async def until(
        self, workflow: str, instance_id: str, statuses: set[str], timeout: float = 90
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            state = await self.instance(workflow, instance_id)
            if state["status"] in statuses:
                return state
            if loop.time() > deadline:
                logs = "\n".join(p.output()[-2000:] for p in self.procs)
                raise AssertionError(f"{instance_id} not {statuses}: {state}\n{logs}")
            await asyncio.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(p.output()[-3000:] for p in self.procs)


async def open_stack(
    nats_url: str, prefix: str, tmp: Path, *, base_path: str = "", **extra: str
) -> UiStack:
    port = free_port()
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "WORKFLOWS_AUTH_TOKEN": TOKEN,
        "GATEWAY_PORT": str(port),
        "UI_BASE_PATH": base_path,
        "LOG_LEVEL": "INFO",
        **extra,
    }
    stack = UiStack(f"http://127.0.0.1:{port}", f"{base_path}/ui", env, tmp)
    gateway = spawn("tests.support.ui_gateway", env, tmp / "gateway.log")
    stack.procs.append(gateway)
    stack.start_worker()
    await wait_http(stack.origin, gateway)
    return stack


def close_stack(stack: UiStack) -> None:
    for proc in stack.procs:
        proc.kill()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Where a test's screenshots go: tests/browser/artifacts/<test name>/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder
