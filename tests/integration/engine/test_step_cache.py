"""The cross-run step cache against a real nats-server: single flight, TTL, invalidation."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.workflow import CachePolicy, Context, Registry, RetryPolicy, workflow
from shared.workflow.cache import StepCache, token
from tests.support.engine import engine_settings, prepare, running_worker, wait_for
from tests.support.procs import Proc, spawn


def cached_registry(calls: list[str], hold: float = 0.3, fail_first: int = 0) -> Registry:
    """A workflow whose `analyze` step is cached by params["key"] and counts its calls."""

    async def analyze(key: str, instance: str) -> dict[str, Any]:
        calls.append(instance)
        await asyncio.sleep(hold)
        if len(calls) <= fail_first:
            raise RuntimeError("transient upstream failure")
        return {"key": key, "by": instance, "n": len(calls)}

    @workflow("analysis", retry=RetryPolicy(limit=3, delay=0.1))
    async def analysis(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
        policy = CachePolicy(
            key=params["key"],
            ttl=timedelta(seconds=float(params.get("ttl", 60))),
            version=params.get("version"),
        )
        result = await ctx.step("analyze", analyze, params["key"], ctx.instance_id, cache=policy)
        return {"result": result}

    return Registry([analysis])


async def test_twenty_instances_with_one_key_call_the_step_once(nc, nats_url, prefix):
    """20 concurrent instances with the same key: the function runs once, every instance
    gets its value, and 19 records say `cached: true`."""
    calls: list[str] = []
    registry = cached_registry(calls, hold=0.5)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        for i in range(20):
            await instances.trigger("analysis", {"key": "job-42"}, f"i{i}")
        states = [await wait_for(instances, "analysis", f"i{i}") for i in range(20)]
    assert len(calls) == 1, calls
    assert {s.status for s in states} == {"complete"}
    outputs = {s.output["result"]["by"] for s in states}
    assert outputs == {calls[0]}
    flags = sorted(s.steps[0].cached for s in states)
    assert flags == [False] + [True] * 19
    computed = next(s for s in states if not s.steps[0].cached)
    assert computed.instance_id == calls[0]


async def test_a_failing_holder_releases_the_claim_and_the_value_is_computed_once(
    nc, nats_url, prefix
):
    """The first computation fails: its claim is released, a retry computes the value once
    more, and every instance gets that one value."""
    calls: list[str] = []
    registry = cached_registry(calls, hold=0.2, fail_first=1)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        for i in range(5):
            await instances.trigger("analysis", {"key": "k"}, f"f{i}")
        states = [await wait_for(instances, "analysis", f"f{i}") for i in range(5)]
    assert len(calls) == 2, calls
    assert {s.status for s in states} == {"complete"}
    assert len({s.output["result"]["n"] for s in states}) == 1
    assert states[0].output["result"]["n"] == 2


async def test_entries_expire_after_their_ttl(nc, nats_url, prefix):
    """Within the TTL a second run is served from the cache; after it, it computes again."""
    calls: list[str] = []
    registry = cached_registry(calls, hold=0.0)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("analysis", {"key": "short", "ttl": 2}, "a")
        await wait_for(instances, "analysis", "a")
        await instances.trigger("analysis", {"key": "short", "ttl": 2}, "b")
        second = await wait_for(instances, "analysis", "b")
        await asyncio.sleep(3.0)
        await instances.trigger("analysis", {"key": "short", "ttl": 2}, "c")
        third = await wait_for(instances, "analysis", "c")
    assert calls == ["a", "c"]
    assert second.steps[0].cached and second.output["result"]["by"] == "a"
    assert not third.steps[0].cached and third.output["result"]["by"] == "c"
    # The server removed the expired entry itself (per-message TTL), then "c" wrote anew.
    cache = await StepCache.open(nc, prefix, lease=1.0)
    assert len(await cache.keys("analysis")) == 1
    (entry,) = (await cache.entries("analysis")).values()
    assert (entry.state, entry.owner.split(":")[0]) == ("done", "analysis/c")


async def test_versions_are_separate_entries(nc, nats_url, prefix):
    """The same key under another code version is computed again; the old one stays."""
    calls: list[str] = []
    registry = cached_registry(calls, hold=0.0)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        for iid, version in (("v1", "1"), ("v2", "2"), ("v1b", "1"), ("none", None)):
            await instances.trigger("analysis", {"key": "k", "version": version}, iid)
            await wait_for(instances, "analysis", iid)
    assert calls == ["v1", "v2", "none"]


async def test_invalidation_by_prefix_removes_only_matching_keys(nc, nats_url, prefix):
    """Invalidating prefix `job-` recomputes job-1 and job-2 on their next run, not `other`."""
    calls: list[str] = []
    registry = cached_registry(calls, hold=0.0)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    keys = ["job-1", "job-2", "other", "jo"]
    async with running_worker(nats_url, registry, settings):
        for key in keys:
            await instances.trigger("analysis", {"key": key}, f"first-{key}")
            await wait_for(instances, "analysis", f"first-{key}")
        assert await instances.invalidate_cache("analysis", "analyze", prefix="job-") == 2
        assert await instances.invalidate_cache("analysis", "analyze", prefix="job-") == 0
        for key in keys:
            await instances.trigger("analysis", {"key": key}, f"again-{key}")
            await wait_for(instances, "analysis", f"again-{key}")
        assert await instances.invalidate_cache("analysis") == 4
        await instances.trigger("analysis", {"key": "other"}, "third")
        await wait_for(instances, "analysis", "third")
    assert sorted(calls) == sorted(
        [*(f"first-{k}" for k in keys), "again-job-1", "again-job-2", "third"]
    )


async def test_invalidating_an_unused_namespace_removes_nothing(nc, prefix):
    """No bucket yet: invalidation answers 0 instead of creating one or failing."""
    instances = await prepare(nc, cached_registry([]), engine_settings(prefix))
    assert await instances.invalidate_cache("analysis", "analyze", prefix="x") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [("job-42_A", "job-42_A"), ("a.b", "a=2Eb"), ("=", "=3D"), ("é", "=C3=A9"), (" ", "=20")],
)
def test_tokens_are_subject_safe_and_injective(text, expected):
    """Keys of any text become one subject token; escapes cannot collide with plain text."""
    assert token(text) == expected


def test_cache_policy_rejects_bad_values():
    """An empty key, a sub-second TTL and an oversized key are refused at the call."""
    with pytest.raises(ValueError, match="key"):
        CachePolicy(key="", ttl=timedelta(hours=1))
    with pytest.raises(ValueError, match="ttl"):
        CachePolicy(key="k", ttl=timedelta(milliseconds=10))
    with pytest.raises(ValueError, match="digest"):
        CachePolicy(key="x" * 1000, ttl=timedelta(hours=1))


# -- real worker processes ------------------------------------------------------------


def compute_starts(ledger: Path) -> list[tuple[str, int]]:
    """(instance, pid) of every start of the cached computation, from the ledger."""
    if not ledger.exists():
        return []
    rows = [line.split() for line in ledger.read_text().splitlines()]
    return [(r[0], int(r[3])) for r in rows if r[1] == "compute" and r[2] == "start"]


@pytest.fixture
def step_env(nats_url: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "2",
        "MAX_DELIVER": "8",
        "WORKER_CONCURRENCY": "16",
        "SHUTDOWN_GRACE": "5",
        "LEDGER_FILE": str(tmp_path / "ledger.txt"),
        "STEP_SLEEP": "1.0",
    }


def start_step_worker(env: dict[str, str], tmp_path: Path, n: int, **extra: str) -> Proc:
    return spawn("tests.support.step_app", {**env, **extra}, tmp_path / f"step-worker{n}.log")


async def started(proc: Proc) -> None:
    for _ in range(600):
        if "worker started" in proc.output():
            return
        assert proc.alive(), proc.output()
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker did not start: {proc.output()}")


async def test_two_processes_racing_on_one_key_compute_it_once(nc, prefix, step_env, tmp_path):
    """20 instances with one key spread over two worker processes: one computation."""
    from tests.support.step_app import REGISTRY

    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    workers = [start_step_worker(step_env, tmp_path, n) for n in (1, 2)]
    try:
        for w in workers:  # both pulling before the first message, so both get some
            await started(w)
        for i in range(20):
            await instances.trigger("cached", {"key": "posting-7"}, f"p{i}")
        states = [await wait_for(instances, "cached", f"p{i}", timeout=90) for i in range(20)]
    finally:
        for w in workers:
            w.terminate()
    starts = compute_starts(Path(step_env["LEDGER_FILE"]))
    assert len(starts) == 1, starts
    assert {s.status for s in states} == {"complete"}
    assert {s.output["ran_on"] for s in states} == {w.pid for w in workers}, "no cross-process race"
    assert {s.output["result"]["by"] for s in states} == {starts[0][0]}
    assert sum(s.steps[1].cached for s in states) == 19


async def test_holder_sigkilled_mid_computation_is_taken_over_once(nc, prefix, step_env, tmp_path):
    """The process computing a cached value is SIGKILLed: another process takes the claim
    over once its lease lapses and computes it once more; every instance gets that value."""
    from tests.support.step_app import REGISTRY

    ledger = Path(step_env["LEDGER_FILE"])
    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    holder = start_step_worker(step_env, tmp_path, 1, STEP_SLEEP="120")
    survivor = None
    try:
        await started(holder)
        await instances.trigger("cached", {"key": "resume-sha"}, "first")
        for _ in range(600):
            if compute_starts(ledger):
                break
            await asyncio.sleep(0.05)
        assert compute_starts(ledger) == [("first", holder.pid)], holder.output()
        survivor = start_step_worker(step_env, tmp_path, 2, STEP_SLEEP="0.3")
        await started(survivor)
        for i in range(9):  # some wait on the holder's claim in each process
            await instances.trigger("cached", {"key": "resume-sha"}, f"later{i}")
        await asyncio.sleep(1.0)
        assert len(compute_starts(ledger)) == 1  # the claim holds everyone else back
        holder.kill()
        ids = ["first", *(f"later{i}" for i in range(9))]
        states = [await wait_for(instances, "cached", iid, timeout=120) for iid in ids]
    finally:
        holder.kill()
        if survivor is not None:
            survivor.terminate()
    starts = compute_starts(ledger)
    assert len(starts) == 2, starts
    assert starts[1][1] == survivor.pid
    assert {s.status for s in states} == {"complete"}
    assert {s.output["result"]["pid"] for s in states} == {survivor.pid}
