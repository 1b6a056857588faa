"""A worker process for engine tests: `python -m tests.support.worker_app`.

Its workflows write a ledger line (instance, step, pid, time) *before* each side effect,
to a file named by LEDGER_FILE, so a test can count executions across processes.
Environment: NATS_URL, HOWLERHIRE_NAMESPACE, ACK_WAIT, MAX_DELIVER, WORKER_CONCURRENCY,
STEP_SLEEP (seconds the slow step takes), LEDGER_FILE.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from typing import Any

from shared.service import run_service
from shared.workflow import Context, Registry, RetryPolicy, workflow

LEDGER = os.environ.get("LEDGER_FILE", "/dev/null")
STEP_SLEEP = float(os.environ.get("STEP_SLEEP", "2"))


def ledger(instance: str, step: str, what: str = "run") -> None:
    line = f"{instance} {step} {what} {os.getpid()} {time.time():.6f}\n"
    with open(LEDGER, "a") as fh:  # O_APPEND: lines from several processes do not mix
        fh.write(line)


async def effect(instance: str, step: str, seconds: float = 0.0) -> dict[str, Any]:
    ledger(instance, step)
    if seconds:
        await asyncio.sleep(seconds)
    return {"step": step, "pid": os.getpid(), "at": time.time()}


async def held(instance: str, step: str, seconds: float) -> str:
    ledger(instance, step, "start")
    await asyncio.sleep(seconds)
    ledger(instance, step, "end")
    return step


@workflow("chain", retry=RetryPolicy(limit=2, delay=0.1))
async def chain(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """Six steps; the fourth is slow (STEP_SLEEP seconds)."""
    iid = ctx.instance_id
    results = []
    for n in range(1, 7):
        seconds = STEP_SLEEP if n == 4 else 0.0
        results.append(await ctx.step(f"step-{n}", effect, iid, f"step-{n}", seconds))
    return {"pids": [r["pid"] for r in results]}


@workflow("limited", concurrency=2)
async def limited(ctx: Context[None], params: dict[str, Any]) -> str:
    """One held step; at most two instances run at once across all workers."""
    return await ctx.step("hold", held, ctx.instance_id, "hold", float(params.get("hold", 0.5)))


@workflow("sleeper")
async def sleeper(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """A step, a durable sleep, a step."""
    await ctx.step("before", effect, ctx.instance_id, "before")
    await ctx.sleep("nap", timedelta(seconds=float(params.get("seconds", 3))))
    return await ctx.step("after", effect, ctx.instance_id, "after")


@workflow("crasher")
async def crasher(ctx: Context[None], params: dict[str, Any]) -> str:
    """Kills its worker process in a step when asked to: a poison instance."""

    async def maybe_crash() -> str:
        ledger(ctx.instance_id, "boom")
        if params.get("crash"):
            os._exit(137)
        return "fine"

    return await ctx.step("boom", maybe_crash)


REGISTRY = Registry([chain, limited, sleeper, crasher])

if __name__ == "__main__":
    sys.exit(run_service("test-worker", REGISTRY))
