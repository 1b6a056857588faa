"""The benchmark workflow, and a worker process that runs it: `python -m bench.worker`.

Seven steps, each returning a small dict: the engine's fixed cost per step (record it with
a compare-and-set, replay nothing) without any work of the step's own. Environment as for
every service: NATS_URL, HOWLERHIRE_NAMESPACE, WORKER_CONCURRENCY.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from shared.service import run_service
from shared.workflow import Context, Registry, workflow

WORKFLOW_ID = "bench7"
SLEEPER_ID = "bench-sleeper"
STEP_NAMES = tuple(f"step-{n}" for n in range(1, 8))


async def small_step(n: int) -> dict[str, Any]:
    return {"step": n, "ok": True, "value": n * 7}


@workflow(WORKFLOW_ID)
async def seven_steps(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """Seven steps, each returning a small dict."""
    last: dict[str, Any] = {}
    for n, name in enumerate(STEP_NAMES, start=1):
        last = await ctx.step(name, small_step, n)
    return last


@workflow(SLEEPER_ID)
async def sleeper(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """A step, then a long durable sleep (bench.scale parks thousands of these)."""
    first = await ctx.step("before", small_step, 0)
    await ctx.sleep("nap", timedelta(seconds=float(params.get("seconds", 3600))))
    return first


REGISTRY = Registry([seven_steps, sleeper])

if __name__ == "__main__":
    sys.exit(run_service("bench-worker", REGISTRY))
