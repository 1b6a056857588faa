"""The demo workflow: what a durable workflow looks like, runnable with no accounts."""

from __future__ import annotations

from datetime import timedelta

import msgspec

from services.demo import steps
from shared.workflow import Context, RetryPolicy, progress, workflow


class GreetingParams(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    pause_seconds: float = 1.0


@workflow(
    "demo-greeting",
    on="demo/greeting.requested",
    params=GreetingParams,
    progress=progress(
        {"compose": "Composing a greeting", "pause": "Pausing", "sign": "Signing it"},
        summary=("length",),
    ),
)
async def greet(ctx: Context[None], params: GreetingParams) -> dict[str, object]:
    """Compose a greeting, pause durably, then sign it."""
    text = await ctx.step(
        "compose",
        steps.compose,
        params.name,
        retry=RetryPolicy(limit=3, delay=timedelta(seconds=1)),
    )
    await ctx.sleep("pause", timedelta(seconds=params.pause_seconds))
    signed = await ctx.step("sign", steps.sign, text)
    return {"greeting": signed, "length": len(signed)}
