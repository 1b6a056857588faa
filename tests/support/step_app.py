"""A worker process for step-cache and rate-limit tests: `python -m tests.support.step_app`.

Its steps write a ledger line (instance, step, pid, time) to LEDGER_FILE *before* their
side effect, so a test counts executions across processes. Environment: the engine's
(NATS_URL, HOWLERHIRE_NAMESPACE, ACK_WAIT, WORKER_CONCURRENCY, RATE_LIMITS, ...), plus
STEP_SLEEP (seconds the cached computation takes in this process) and FAKE_URL (the
local HTTP server the `send` step posts to).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import timedelta
from typing import Any

import httpx

from shared.errors import RetryAfterError
from shared.service import run_service
from shared.workflow import CachePolicy, Context, Registry, RetryPolicy, workflow

LEDGER = os.environ.get("LEDGER_FILE", "/dev/null")
STEP_SLEEP = float(os.environ.get("STEP_SLEEP", "0.5"))
FAKE_URL = os.environ.get("FAKE_URL", "")


def ledger(instance: str, step: str, what: str = "run") -> None:
    line = f"{instance} {step} {what} {os.getpid()} {time.time():.6f}\n"
    with open(LEDGER, "a") as fh:  # O_APPEND: lines from several processes do not mix
        fh.write(line)


async def whoami() -> int:
    return os.getpid()


async def compute(instance: str, key: str) -> dict[str, Any]:
    """The expensive computation the cache shares (an LLM analysis, a parse)."""
    ledger(instance, "compute", "start")
    await asyncio.sleep(STEP_SLEEP)
    ledger(instance, "compute", "end")
    return {"key": key, "pid": os.getpid(), "by": instance}


@workflow("cached", retry=RetryPolicy(limit=3, delay=0.2))
async def cached(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """Which process ran the instance, then the shared computation of params["key"]."""
    pid = await ctx.step("who", whoami)
    policy = CachePolicy(key=params["key"], ttl=timedelta(minutes=10))
    result = await ctx.step("compute", compute, ctx.instance_id, params["key"], cache=policy)
    return {"ran_on": pid, "result": result}


async def send(instance: str) -> int:
    """One email through the fake Resend API (its wire format); a 429 says when to retry."""
    payload = {
        "from": "HowlerHire <jobs@howlerhire.test>",
        "to": ["someone@example.com"],
        "subject": instance,
        "text": "hello",
        "headers": {"X-Sent-At": f"{time.time():.6f}", "X-Pid": str(os.getpid())},
    }
    async with httpx.AsyncClient(timeout=10.0) as client:
        response = await client.post(
            f"{FAKE_URL}/emails",
            json=payload,
            headers={"Authorization": "Bearer re_test_key", "Idempotency-Key": instance},
        )
    if response.status_code == 429:
        raise RetryAfterError("rate limited", float(response.headers.get("retry-after", "1")))
    response.raise_for_status()
    return os.getpid()


@workflow("sender", retry=RetryPolicy(limit=5, delay=0.2))
async def sender(ctx: Context[None], params: dict[str, Any]) -> int:
    """One email, spending one unit of the limit named in params["limit"]."""
    return await ctx.step("send", send, ctx.instance_id, limit=params["limit"])


REGISTRY = Registry([cached, sender])

if __name__ == "__main__":
    sys.exit(run_service("step-test-worker", REGISTRY))
