"""A real gateway over the session's nats-server, with test workflows and a real worker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.engine import connect_gateway
from shared.config import EngineSettings
from shared.embedded import free_port
from shared.workflow import Context, Instances, Registry, workflow
from tests.support.engine import engine_settings, prepare

TOKEN = "integration-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENT_KEY = "sdk-event-key-42"

CALLS: list[str] = []


async def add(a: int, b: int) -> int:
    CALLS.append(f"add:{a}+{b}")
    return a + b


async def prepare_approval(who: str) -> str:
    return f"asked {who}"


@workflow("adder", on=("math/add.requested", "math/sum.requested"))
async def adder(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    total = await ctx.step("add", add, params["a"], params["b"])
    return {"sum": total}


@workflow("approval", on="approval/requested")
async def approval(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    await ctx.step("ask", prepare_approval, params.get("who", "ops"))
    got = await ctx.wait_for_event("approval", "approved", timedelta(minutes=10))
    return {"approvedBy": got["by"]}


REGISTRY = Registry([adder, approval])


def gateway_app(nats_url: str, settings: EngineSettings, **overrides: Any) -> Litestar:
    """The real app; its engine is the real one, for the test registry's workflows."""

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Instances]:
        nc = await connect_gateway(nats_url)
        try:
            yield await prepare(nc, REGISTRY, settings)
        finally:
            await nc.drain()

    values: dict[str, Any] = {"workflows_auth_token": TOKEN}
    values.update(overrides)
    return create_app(GatewaySettings(**values), factory)


@pytest.fixture
def settings(prefix: str) -> EngineSettings:
    return engine_settings(prefix)


@pytest.fixture
async def client(nats_url: str, settings: EngineSettings) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(gateway_app(nats_url, settings)) as test_client:
        yield test_client


@contextlib.asynccontextmanager
async def serving(app: Litestar) -> AsyncIterator[str]:
    """Serve `app` with uvicorn on a free port; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):
            if server.started or task.done():
                break
            await asyncio.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)
