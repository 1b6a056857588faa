"""The overview's numbers from real runs: counts by status, the last hour's finished runs
and failure rate, queue depth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client as NATS

from services.gateway.ui.overview import totals, workflow_stats
from shared.workflow import Context, NonRetryableError, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


async def ok_step() -> str:
    return "ok"


async def bad_step() -> str:
    raise NonRetryableError("no")


@workflow("ov-ok")
async def ok(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("ok", ok_step)


@workflow("ov-fail")
async def fail(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("bad", bad_step)


@workflow("ov-idle")
async def idle(ctx: Context[None], params: dict[str, Any]) -> str:
    return await ctx.step("ok", ok_step)


async def test_counts_last_hour_and_queue_depth(nc: NATS, nats_url: str, prefix: str) -> None:
    settings = engine_settings(prefix)
    instances = await prepare(nc, Registry([ok, fail, idle]), settings)
    async with running_worker(nats_url, Registry([ok, fail]), settings):
        for n in range(5):
            await instances.trigger("ov-ok", {}, f"ok{n}")
        for n in range(2):
            await instances.trigger("ov-fail", {}, f"bad{n}")
        for n in range(5):
            await wait_for(instances, "ov-ok", f"ok{n}")
        for n in range(2):
            assert (await wait_for(instances, "ov-fail", f"bad{n}")).status == "errored"
    for n in range(3):
        await instances.trigger("ov-idle", {}, f"idle{n}")  # no worker runs these
    await instances.terminate("ov-idle", "idle2")

    rows = {row.workflow: row for row in await workflow_stats(instances)}
    assert rows["ov-ok"].counts["complete"] == 5 and rows["ov-ok"].finished_hour == 5
    assert rows["ov-ok"].failure_rate == 0.0
    assert rows["ov-fail"].counts["errored"] == 2 and rows["ov-fail"].failure_rate == 1.0
    idle_row = rows["ov-idle"]
    assert idle_row.counts["queued"] == 2 and idle_row.counts["terminated"] == 1
    # Throughput counts runs that completed or errored; terminated ones an operator ended.
    assert idle_row.finished_hour == 0 and idle_row.pending == 3  # the messages wait
    assert idle_row.total == 3
    summary = totals(list(rows.values()))
    assert summary["finished_hour"] == 7 and summary["errored_hour"] == 2
    assert summary["failure_rate"] == 2 / 7

    # An hour from now, none of these finished "in the last hour".
    later = {
        r.workflow: r
        for r in await workflow_stats(instances, datetime.now(UTC) + timedelta(hours=1, minutes=1))
    }
    assert later["ov-ok"].finished_hour == 0 and later["ov-ok"].counts["complete"] == 5
