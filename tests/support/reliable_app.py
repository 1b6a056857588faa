"""The reliability suite's worker process: `python -m tests.support.reliable_app`.

One workflow, `ledgered`, of six steps, each writing the PostgreSQL ledger
(tests/support/ledger.py) *before* its side effect:
step-1, step-3, step-6 plain; step-2 writes a business row in PostgreSQL with its output
row in the same transaction (the DBOS pattern: a replay finds the output and writes
nothing); step-4 sleeps STEP_SLEEP seconds; step-5 sends an email through Resend with an
Idempotency-Key.

Environment: NATS_URL, HOWLERHIRE_NAMESPACE, ACK_WAIT, MAX_DELIVER, WORKER_CONCURRENCY,
LEDGER_DSN, RESEND_URL, STEP_SLEEP; fault hooks: WF_CRASH_AT = before_effect |
after_effect_before_record (the engine's own points are handled by the engine), with
WF_CRASH_STEP (only that step) and WF_CRASH_HIT (the n-th time this process gets there);
WF_NO_HEARTBEAT=1 turns the worker's in_progress() ticker off, so that a step longer than
ack_wait is redelivered to a second worker while the first still runs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import asyncpg
import httpx

from shared.service import run_service
from shared.workflow import Context, Registry, RetryPolicy, Worker, workflow
from tests.support.ledger import write_effect

STEP_SLEEP = float(os.environ.get("STEP_SLEEP", "2"))
CRASH_AT = os.environ.get("WF_CRASH_AT", "")
CRASH_STEP = os.environ.get("WF_CRASH_STEP", "")
CRASH_HIT = int(os.environ.get("WF_CRASH_HIT", "1"))
PG_STEPS = ("step-2",)

_pool: asyncpg.Pool | None = None
_http: httpx.AsyncClient | None = None
_hits = 0


async def pool() -> asyncpg.Pool:
    global _pool
    if _pool is None:
        _pool = await asyncpg.create_pool(os.environ["LEDGER_DSN"], min_size=1, max_size=8)
    return _pool


def http() -> httpx.AsyncClient:
    global _http
    if _http is None:
        _http = httpx.AsyncClient(base_url=os.environ["RESEND_URL"], timeout=10.0)
    return _http


def maybe_crash(point: str, step: str) -> None:
    """os._exit(137) at `point` of `step`, the WF_CRASH_HIT-th time this process is there."""
    global _hits
    if point != CRASH_AT or (CRASH_STEP and step != CRASH_STEP):
        return
    _hits += 1
    if _hits == CRASH_HIT:
        print(f"WF_CRASH_AT={point} step={step}: exiting hard", file=sys.stderr, flush=True)
        os._exit(137)


async def plain(run_id: str, step: str, seconds: float) -> dict[str, Any]:
    maybe_crash("before_effect", step)
    async with (await pool()).acquire() as conn:
        attempt = await write_effect(conn, run_id, step, os.getpid())
    if seconds:
        await asyncio.sleep(seconds)
    maybe_crash("after_effect_before_record", step)
    return {"step": step, "pid": os.getpid(), "attempt": attempt}


async def order(run_id: str, step: str) -> dict[str, Any]:
    """A PostgreSQL write whose output row commits with it: a replay writes nothing."""
    maybe_crash("before_effect", step)
    async with (await pool()).acquire() as conn, conn.transaction():
        done = await conn.fetchval(
            "SELECT output FROM step_outputs WHERE run_id = $1 AND step = $2", run_id, step
        )
        if done is not None:
            output: dict[str, Any] = json.loads(done)
            return output
        attempt = await write_effect(conn, run_id, step, os.getpid())
        await conn.execute(
            "INSERT INTO orders (business_key, run_id) VALUES ($1, $2)",
            f"order-{run_id}",
            run_id,
        )
        output = {"step": step, "pid": os.getpid(), "attempt": attempt}
        # A racing twin's insert fails here on the primary key and rolls back its row.
        await conn.execute(
            "INSERT INTO step_outputs (run_id, step, output) VALUES ($1, $2, $3)",
            run_id,
            step,
            json.dumps(output),
        )
    maybe_crash("after_effect_before_record", step)
    return output


async def email(run_id: str, step: str) -> dict[str, Any]:
    """A Resend send; its Idempotency-Key makes a repeat a no-op at Resend."""
    maybe_crash("before_effect", step)
    async with (await pool()).acquire() as conn:
        attempt = await write_effect(conn, run_id, step, os.getpid())
    reply = await http().post(
        "/emails",
        headers={"Authorization": "Bearer re_test_key", "Idempotency-Key": f"welcome-{run_id}"},
        json={
            "from": "jobs@howlerhire.test",
            "to": [f"{run_id}@example.test"],
            "subject": "Welcome",
            "text": f"run {run_id}",
        },
    )
    reply.raise_for_status()
    maybe_crash("after_effect_before_record", step)
    return {"step": step, "pid": os.getpid(), "attempt": attempt, "email": reply.json()["id"]}


@workflow("ledgered", retry=RetryPolicy(limit=3, delay=0.2))
async def ledgered(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    """Six steps with a ledger line before each effect."""
    run = ctx.instance_id
    slow = float(params.get("slow", STEP_SLEEP))
    results = [
        await ctx.step("step-1", plain, run, "step-1", 0.0),
        await ctx.step("step-2", order, run, "step-2"),
        await ctx.step("step-3", plain, run, "step-3", float(params.get("step3", 0.0))),
        await ctx.step("step-4", plain, run, "step-4", slow),
        await ctx.step("step-5", email, run, "step-5"),
        await ctx.step("step-6", plain, run, "step-6", 0.0),
    ]
    return {"results": results}


REGISTRY = Registry([ledgered])


async def _no_heartbeat(self: Worker) -> None:
    await asyncio.Event().wait()


if __name__ == "__main__":
    if os.environ.get("WF_NO_HEARTBEAT") == "1":
        Worker._heartbeat_loop = _no_heartbeat  # type: ignore[method-assign]
    sys.exit(run_service("reliable-worker", REGISTRY))
