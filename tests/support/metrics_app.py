"""A worker process for the metrics and log tests: `python -m tests.support.metrics_app`.

Each workflow exercises one thing /metrics must count: a step that writes to PostgreSQL
(DATABASE_URL; the test makes its table `mx_rows`), a step that fails once then succeeds,
one that fails for good, a cached step, a rate-limited step (RATE_LIMITS=mx=1/h: the
second caller parks), and a gated step (`gate`: runs until GATE_FILE exists) to hold
messages pending. Every step logs a line, and the database step logs a URL with a
password in it (which must come out masked).
Environment: NATS_URL, HOWLERHIRE_NAMESPACE, DATABASE_URL, GATE_FILE, MARK_DIR, plus the
engine's (METRICS_PORT, LOG_FORMAT, RATE_LIMITS, …).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from shared.errors import NonRetryableError
from shared.service import run_service
from shared.workflow import Context, Registry, RetryPolicy, workflow
from shared.workflow.cache import CachePolicy

log = logging.getLogger("tests.metrics_app")

# Logged by the database step: the password must never reach a log line.
LEAKY_URL = "postgresql://app:pw-LEAK-4d1b9e@db.internal:5432/app"


async def insert(instance: str) -> int:
    log.info("writing a row (via %s)", LEAKY_URL)
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    try:
        await conn.execute("INSERT INTO mx_rows VALUES ($1) ON CONFLICT DO NOTHING", instance)
        count = await conn.fetchval("SELECT count(*) FROM mx_rows")
        return int(count)
    finally:
        await conn.close()


async def flaky(instance: str) -> str:
    """Fails the first time for each instance (a marker file remembers), then succeeds."""
    mark = Path(os.environ["MARK_DIR"]) / instance
    if not mark.exists():
        mark.touch()
        log.info("flaky step failing on purpose")
        raise RuntimeError("first attempt fails")
    log.info("flaky step succeeding")
    return "ok"


async def broken() -> str:
    log.info("broken step failing for good")
    raise NonRetryableError("this step never works")


async def compute(key: str) -> str:
    log.info("computing %s", key)
    return f"value-of-{key}"


async def gated() -> str:
    gate = Path(os.environ["GATE_FILE"])
    while not gate.exists():
        await asyncio.sleep(0.05)
    return "through"


@workflow("mx-db")
async def mx_db(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    rows = await ctx.step("insert", insert, ctx.instance_id)
    done = await ctx.step("after", compute, "after")
    return {"rows": rows, "after": done}


@workflow("mx-flaky", retry=RetryPolicy(limit=3, delay=0.1))
async def mx_flaky(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("flaky", flaky, ctx.instance_id)


@workflow("mx-broken")
async def mx_broken(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("broken", broken)


@workflow("mx-cached")
async def mx_cached(ctx: Context[None], params: dict[str, Any]) -> str:
    policy = CachePolicy(key=str(params["key"]), ttl=timedelta(minutes=10))
    return await ctx.step("compute", compute, str(params["key"]), cache=policy)


@workflow("mx-limited")
async def mx_limited(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("call", compute, "limited", limit="mx")


@workflow("mx-gated", concurrency=1)
async def mx_gated(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("gate", gated)


REGISTRY = Registry([mx_db, mx_flaky, mx_broken, mx_cached, mx_limited, mx_gated])


if __name__ == "__main__":
    sys.exit(run_service("metrics-app", REGISTRY))
