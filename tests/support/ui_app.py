"""A worker and a gateway for the dashboard's browser tests, each its own process.

`python -m tests.support.ui_app` runs the worker; `python -m tests.support.ui_gateway`
runs the real gateway app (services.gateway.app) with these workflows routed, under
uvicorn, configured from the environment like `python -m services.gateway`.

Workflow "ui-steps": `steps` steps of `delay` seconds each; step 2 returns the params'
`html` as part of its output (the escaping test); with `gate`, it waits after step 2 for
an event "go". Workflow "ui-poison": a step, then one
that kills its worker while the file named by POISON_FILE exists.
Environment: NATS_URL, HOWLERHIRE_NAMESPACE, ACK_WAIT, MAX_DELIVER, POISON_FILE, and for
the gateway WORKFLOWS_AUTH_TOKEN, GATEWAY_PORT, UI_BASE_PATH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from shared.service import run_service
from shared.workflow import Context, Instances, Registry, RetryPolicy, workflow

POISON = os.environ.get("POISON_FILE", "/nonexistent")


async def work(n: int, delay: float, html: str) -> dict[str, Any]:
    await asyncio.sleep(delay)
    out: dict[str, Any] = {"step": n, "lines": [f"line {i} of step {n}" for i in range(12)]}
    if n == 2:
        out["html"] = html
    return out


@workflow("ui-steps", retry=RetryPolicy(limit=2, delay=0.2))
async def steps(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """`steps` steps, `delay` seconds each."""
    count = int(params.get("steps", 4))
    delay = float(params.get("delay", 0.5))
    html = str(params.get("html", ""))
    done = []
    for n in range(1, count + 1):
        done.append(await ctx.step(f"part-{n}", work, n, delay, html))
        if n == 2 and params.get("gate"):
            await ctx.wait_for_event("gate", "go", timedelta(minutes=10))
    return {"steps": len(done), "html": html}


async def prepare() -> str:
    return "prepared"


async def risky() -> str:
    if os.path.exists(POISON):
        os._exit(137)
    return "survived"


@workflow("ui-poison")
async def poison(ctx: Context[None], params: dict[str, Any]) -> str:
    await ctx.step("prepare", prepare)
    return await ctx.step("risky", risky)


REGISTRY = Registry([steps, poison])


def serve_gateway() -> int:
    """The real gateway app, routing this registry's workflows."""
    import uvicorn

    from services.gateway.app import create_app
    from services.gateway.config import GatewaySettings
    from services.gateway.engine import connect_gateway
    from shared.bus import Names, ensure_topology
    from shared.config import EngineSettings, load_settings
    from shared.workflow import ensure_consumers

    settings = load_settings(GatewaySettings, os.environ)
    engine_settings = load_settings(EngineSettings, os.environ)

    @contextlib.asynccontextmanager
    async def engine() -> AsyncIterator[Instances]:
        nc = await connect_gateway(engine_settings.nats_url)
        try:
            names = Names(engine_settings.howlerhire_namespace)
            js = nc.jetstream()
            await ensure_topology(
                js,
                names,
                max_bytes=engine_settings.stream_max_bytes,
                dedup_window=engine_settings.dedup_window,
            )
            await ensure_consumers(js, names, REGISTRY, engine_settings, create_only=True)
            yield Instances(nc, names, {wf.id: wf.on for wf in REGISTRY}, settings=engine_settings)
        finally:
            await nc.drain()

    uvicorn.run(
        create_app(settings, engine),
        host="127.0.0.1",
        port=settings.gateway_port,
        access_log=False,
        log_level="warning",
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_service("ui-worker", REGISTRY))
