"""A worker process for the operator-action tests: `python -m tests.support.ops_app`.

Workflow "poison": a step, then a step that kills its process while the file named by
POISON_FILE exists (the bug) and succeeds once it is gone (the fix). Each step writes a
ledger line (instance, step, pid) to LEDGER_FILE before its effect.
Environment: NATS_URL, HOWLERHIRE_NAMESPACE, ACK_WAIT, MAX_DELIVER, POISON_FILE, LEDGER_FILE.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from shared.service import run_service
from shared.workflow import Context, Registry, workflow

LEDGER = os.environ.get("LEDGER_FILE", "/dev/null")
POISON = os.environ.get("POISON_FILE", "/nonexistent")


def ledger(instance: str, step: str) -> None:
    with open(LEDGER, "a") as fh:  # O_APPEND: lines from several processes do not mix
        fh.write(f"{instance} {step} {os.getpid()}\n")


async def prepare(instance: str) -> str:
    ledger(instance, "prepare")
    return "prepared"


async def risky(instance: str) -> str:
    ledger(instance, "risky")
    if os.path.exists(POISON):
        os._exit(137)
    return "survived"


@workflow("poison")
async def poison(ctx: Context[None], params: dict[str, Any]) -> str:
    """Prepare, then the step that crashes its worker until the fix."""
    await ctx.step("prepare", prepare, ctx.instance_id)
    return await ctx.step("risky", risky, ctx.instance_id)


REGISTRY = Registry([poison])

if __name__ == "__main__":
    sys.exit(run_service("ops-worker", REGISTRY))
