"""Workflows for the `howlerhire` CLI tests, as real processes:
`python -m tests.support.cli_app` is a worker; with CLI_APP_ROLE=gateway it is the real
gateway app served by uvicorn for these workflows.

Environment: the engine's (NATS_URL, HOWLERHIRE_NAMESPACE, …), WORKFLOWS_AUTH_TOKEN and
GATEWAY_PORT for the gateway, COUNTER_DIR (where `flaky` counts its attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from shared.workflow import CachePolicy, Context, Instances, Registry, RetryPolicy, workflow

COUNTER_DIR = Path(os.environ.get("COUNTER_DIR", "/tmp"))


async def fetch(user: str) -> dict[str, Any]:
    return {"user": user, "jobs": 3}


async def think(key: str) -> dict[str, Any]:
    return {"key": key, "score": 42}


async def hold(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"held {seconds}s"


async def wobble(instance: str) -> str:
    """Fails on its first attempt of each instance, succeeds on the second."""
    marker = COUNTER_DIR / f"wobble-{instance}"
    if not marker.exists():
        marker.write_text("1")
        raise RuntimeError("first attempt always fails")
    return "steady"


async def doomed() -> str:
    raise ValueError("this step never works")


async def ask(who: str) -> str:
    return f"asked {who}"


@workflow("steps", on="cli/steps.requested", retry=RetryPolicy(limit=2, delay=0.2))
async def steps(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """fetch, a cached think, a short nap, a slow step (params.hold s), a flaky step."""
    got = await ctx.step("fetch", fetch, str(params.get("userId", "-")))
    policy = CachePolicy(key=str(params.get("key", "k")), ttl=timedelta(minutes=10))
    thought = await ctx.step("think", think, str(params.get("key", "k")), cache=policy)
    await ctx.sleep("nap", timedelta(seconds=0.2))
    held = await ctx.step("slow", hold, float(params.get("hold", 0.1)))
    steady = await ctx.step("wobble", wobble, ctx.instance_id)
    return {"jobs": got["jobs"], "score": thought["score"], "held": held, "wobble": steady}


@workflow("quick", on="cli/quick.requested")
async def quick(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """One step: for the tests that need many finished runs fast."""
    return await ctx.step("fetch", fetch, str(params.get("userId", "-")))


@workflow("doomed", retry=RetryPolicy(limit=1, delay=0.2))
async def doomed_flow(ctx: Context[None], params: dict[str, Any]) -> str:
    """One step that fails on every attempt: errored after a retry."""
    return await ctx.step("doomed", doomed)


async def flop() -> str:
    raise RuntimeError("flop flops")


@workflow("patient", retry=RetryPolicy(limit=3, delay=timedelta(minutes=10)))
async def patient(ctx: Context[None], params: dict[str, Any]) -> str:
    """A step that fails and is retried only in 10 minutes: it stays `retrying`."""
    return await ctx.step("flop", flop)


@workflow("approval")
async def approval(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """A step, then waits (10 min) for an `approved` event."""
    await ctx.step("ask", ask, str(params.get("who", "ops")))
    got = await ctx.wait_for_event("approval", "approved", timedelta(minutes=10))
    return {"approvedBy": None if got is None else got.get("by")}


REGISTRY = Registry([steps, quick, doomed_flow, patient, approval])


def gateway() -> int:
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.config import GatewaySettings
    from services.gateway.engine import connect_gateway
    from shared.config import EngineSettings, load_settings
    from tests.support.engine import prepare

    engine = load_settings(EngineSettings, os.environ)

    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Instances]:
        nc = await connect_gateway(engine.nats_url)
        try:
            yield await prepare(nc, REGISTRY, engine)
        finally:
            await nc.drain()

    settings = load_settings(GatewaySettings, os.environ)
    app = create_app(settings, factory)
    uvicorn.run(app, host="127.0.0.1", port=settings.gateway_port, log_config=None)
    return 0


if __name__ == "__main__":
    if os.environ.get("CLI_APP_ROLE") == "gateway":
        sys.exit(gateway())
    from shared.service import run_service

    sys.exit(run_service("cli-test-worker", REGISTRY))
