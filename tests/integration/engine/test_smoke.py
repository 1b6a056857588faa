"""The engine end to end in one process: steps, sleep, events."""

from datetime import timedelta

from shared.workflow import Context, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


async def test_three_steps_complete(nc, nats_url, prefix):
    """A workflow of three steps completes with its output and per-step records."""
    calls = []

    async def add(a, b):
        calls.append((a, b))
        return a + b

    @workflow("adder", on="math/add.requested")
    async def adder(ctx: Context[None], params):
        x = await ctx.step("first", add, params["a"], 1)
        y = await ctx.step("second", add, x, 2)
        z = await ctx.step("third", add, y, 3)
        return {"total": z}

    registry = Registry([adder])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        _, created = await instances.trigger("adder", {"a": 10}, "i1")
        assert created
        done = await wait_for(instances, "adder", "i1")
    assert done.status == "complete", done
    assert done.output == {"total": 16}
    assert [s.name for s in done.steps] == ["first", "second", "third"]
    assert all(s.attempts == 1 and s.status == "complete" for s in done.steps)
    assert calls == [(10, 1), (11, 2), (13, 3)]


async def test_sleep_and_event(nc, nats_url, prefix):
    """A sleep parks the instance and wakes it; wait_for_event resumes on the event."""

    @workflow("napper")
    async def napper(ctx: Context[None], params):
        await ctx.sleep("nap", timedelta(seconds=1))
        got = await ctx.wait_for_event("approval", "approved", timedelta(seconds=60))
        return {"got": got}

    registry = Registry([napper])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("napper", {}, "n1")
        waiting = await wait_for(
            instances, "napper", "n1", lambda s: len(s.steps) == 2 and s.status == "waiting"
        )
        assert waiting.steps[0].status == "complete"
        await instances.send_event("napper", "n1", "approved", {"by": "ops"})
        done = await wait_for(instances, "napper", "n1")
    assert done.status == "complete", done
    assert done.output == {"got": {"by": "ops"}}
