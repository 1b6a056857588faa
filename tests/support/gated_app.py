"""A worker process with a gated step, for SIGKILL tests: `python -m tests.support.gated_app`.

Workflow `gated-chain`: step `write` answers "bad" on its first two gate rounds and "good"
on the third (the fallback round); each attempt writes a ledger line (instance, round,
pid) to LEDGER_FILE before it answers, and the second round takes STEP_SLEEP seconds so
a test can kill the process during it. Environment as tests.support.worker_app.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from shared.service import run_service
from shared.workflow import Context, Registry, RetryPolicy, Validate, step_feedback, workflow

LEDGER = os.environ.get("LEDGER_FILE", "/dev/null")
STEP_SLEEP = float(os.environ.get("STEP_SLEEP", "3"))


async def write(instance: str) -> dict[str, Any]:
    feedback = step_feedback()
    round_no = feedback.round if feedback else 0
    with open(LEDGER, "a") as fh:  # O_APPEND: lines from several processes do not mix
        fh.write(f"{instance} {round_no} {os.getpid()}\n")
    if round_no == 1:
        await asyncio.sleep(STEP_SLEEP)
    return {"text": "good" if feedback and feedback.fallback else "bad", "round": round_no}


def check(value: dict[str, Any]) -> list[str]:
    return [] if value["text"] == "good" else [f"round {value['round']} is not good"]


@workflow("gated-chain", retry=RetryPolicy(limit=2, delay=0.1))
async def gated_chain(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    result = await ctx.step("write", write, ctx.instance_id, validate=Validate(check, retries=1))
    return {"text": result["text"]}


REGISTRY = Registry([gated_chain])

if __name__ == "__main__":
    sys.exit(run_service("test-gated-worker", REGISTRY))
