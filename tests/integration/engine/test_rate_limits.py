"""Shared rate limits with real worker processes: one budget for all, parking, 429s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.workflow import Spend
from shared.workflow.ratelimit import RateLimiter, parse_limits
from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.fakes import ResendFake, RunningFake
from tests.support.procs import Proc, spawn
from tests.support.step_app import REGISTRY


@pytest.fixture
def resend(fixtures_dir: Path) -> Iterator[RunningFake]:
    with RunningFake(ResendFake(fixtures_dir)) as fake:
        yield fake


@pytest.fixture
def limit_env(nats_url: str, prefix: str, tmp_path: Path, resend: RunningFake) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "3",
        "MAX_DELIVER": "8",
        "WORKER_CONCURRENCY": "16",
        "SHUTDOWN_GRACE": "5",
        "LEDGER_FILE": str(tmp_path / "ledger.txt"),
        "FAKE_URL": resend.url,
    }


def start(env: dict[str, str], tmp_path: Path, n: int, **extra: str) -> Proc:
    return spawn("tests.support.step_app", {**env, **extra}, tmp_path / f"limit-worker{n}.log")


async def started(proc: Proc) -> None:
    for _ in range(600):
        if "worker started" in proc.output():
            return
        assert proc.alive(), proc.output()
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker did not start: {proc.output()}")


def sends(fake: RunningFake) -> list[tuple[float, float, int, str]]:
    """(arrival, sent, pid, instance) of every email the fake received, by sending time."""
    rows = []
    for request in fake.app.requests():
        if request.path != "/emails":
            continue
        body = request.json()
        rows.append(
            (
                request.time,
                float(body["headers"]["X-Sent-At"]),
                int(body["headers"]["X-Pid"]),
                str(body["subject"]),
            )
        )
    return sorted(rows, key=lambda r: r[1])


async def test_two_processes_share_one_budget(nc, prefix, limit_env, tmp_path, resend):
    """Two worker processes under `x=5/s`: in 10 s they send at most 5 + 5 x 10 = 55."""
    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    env = {**limit_env, "RATE_LIMITS": "x=5/s"}
    workers = [start(env, tmp_path, n) for n in (1, 2)]
    try:
        for w in workers:
            await started(w)
        for i in range(150):
            await instances.trigger("sender", {"limit": "x"}, f"m{i}")
        for _ in range(1200):  # until the 10 s window after the first send is closed
            rows = sends(resend)
            if rows and rows[-1][1] >= rows[0][1] + 10.5:
                break
            await asyncio.sleep(0.1)
    finally:
        for w in workers:
            w.terminate()
    rows = sends(resend)
    first = rows[0][1]
    window = [r for r in rows if first <= r[1] < first + 10.0]
    assert len(window) <= 55, len(window)
    assert len(window) >= 25, f"the budget was not used: {len(window)} in 10 s"
    assert {r[2] for r in window} == {w.pid for w in workers}, "one process did all the sending"
    assert len({r[3] for r in rows}) == len(rows), "an email was sent twice"
    for w in workers:
        assert "Traceback" not in w.output(), w.output()


async def test_a_long_wait_parks_the_instance_and_frees_the_worker(
    nc, prefix, limit_env, tmp_path, resend
):
    """Under `slow=1/20s` the second send waits ~20 s: its instance is parked (`waiting`),
    the single worker slot serves other work meanwhile, and it sends once when due."""
    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    env = {**limit_env, "RATE_LIMITS": "slow=1/20s", "WORKER_CONCURRENCY": "1"}
    worker = start(env, tmp_path, 1)
    try:
        await started(worker)
        await instances.trigger("sender", {"limit": "slow"}, "a")
        assert (await wait_for(instances, "sender", "a", timeout=60)).status == "complete"
        await instances.trigger("sender", {"limit": "slow"}, "b")
        parked = await wait_for(instances, "sender", "b", lambda s: s.status == "waiting")
        assert parked.steps == []  # nothing recorded: it only waits for its turn
        # The one slot is free: an unlimited instance runs to completion meanwhile.
        await instances.trigger("cached", {"key": "meanwhile"}, "c")
        assert (await wait_for(instances, "cached", "c", timeout=60)).status == "complete"
        assert (await instances.get("sender", "b")).status == "waiting"
        assert len(sends(resend)) == 1
        done = await wait_for(instances, "sender", "b", timeout=90)
    finally:
        worker.terminate()
    assert done.status == "complete"
    rows = sends(resend)
    assert [r[3] for r in rows] == ["a", "b"]
    assert rows[1][1] - rows[0][1] >= 19.9  # one token per 20 s, never sooner


async def test_a_429_with_retry_after_holds_back_every_process(
    nc, prefix, limit_env, tmp_path, resend
):
    """One send gets 429 Retry-After: 5. Neither process sends again until then (allowing
    1.5 s for requests already on the wire), then both go on and every instance completes."""
    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    env = {**limit_env, "RATE_LIMITS": "api=4/s"}
    workers = [start(env, tmp_path, n) for n in (1, 2)]
    try:
        for w in workers:
            await started(w)
        for i in range(40):
            await instances.trigger("sender", {"limit": "api"}, f"q{i}")
        for _ in range(600):
            if len(sends(resend)) >= 8:
                break
            await asyncio.sleep(0.02)
        resend.app.add_script(
            {
                "times": 1,
                "status": 429,
                "headers": {"retry-after": "5"},
                "json": {
                    "statusCode": 429,
                    "name": "rate_limit_exceeded",
                    "message": "Too many requests. You can only make 2 requests per second.",
                },
            }
        )
        states = [await wait_for(instances, "sender", f"q{i}", timeout=120) for i in range(40)]
    finally:
        for w in workers:
            w.terminate()
    assert {s.status for s in states} == {"complete"}
    rows = sorted(sends(resend))  # by arrival
    seen: set[str] = set()
    refused = None
    for _arrival, _, _, instance in rows:
        if instance in seen:
            refused = next(r for r in rows if r[3] == instance)  # its first send got the 429
            break
        seen.add(instance)
    assert refused is not None, "no send was refused and retried"
    t429 = refused[0]
    during = [r for r in rows if t429 + 1.5 < r[0] < t429 + 5.0]
    assert during == [], f"{len(during)} sends while the upstream asked to wait"
    before = {r[2] for r in rows if r[0] <= t429}
    after = {r[2] for r in rows if r[0] >= t429 + 5.0}
    assert before == after == {w.pid for w in workers}
    retried = next(s for s in states if s.instance_id == refused[3])
    assert retried.steps[0].attempts == 2


async def test_settle_returns_the_unspent_estimate(nc, prefix):
    """A call that spent less than its estimate gives the rest back to the bucket."""
    limiter = await RateLimiter.open(nc, prefix, parse_limits("tokens=1000/min"))
    spend = Spend("tokens", 600.0)
    began = time.monotonic()
    assert (await limiter.take([spend], 5.0)).taken
    await limiter.adjust("tokens", 600.0 - 100.0)  # what a settle of 100 does
    (state,) = [s for s in await limiter.states() if s.name == "tokens"]
    # 1000/min refills 16.7 tokens a second: allow what a slow machine let it refill.
    refill = (time.monotonic() - began) * 1000 / 60
    assert 899.0 <= state.tokens <= 901.0 + refill
    # A second call of 950 waits for the refill (50 tokens: 3 s, less what has refilled
    # since) instead of going under at once.
    got = await limiter.take([Spend("tokens", 950.0)], 5.0)
    elapsed = time.monotonic() - began
    assert got.taken and 3.0 - elapsed - 0.1 <= got.wait <= 3.1, (got.wait, elapsed)


async def test_configured_limits_show_full_until_used(nc, prefix):
    """Instances.rate_limits lists configured limits never spent from as full buckets."""
    instances = await prepare(nc, REGISTRY, engine_settings(prefix))
    # No bucket yet: the defaults (Resend's and GitHub's limits), full.
    defaults = {s.name: (s.tokens, s.capacity) for s in await instances.rate_limits()}
    assert defaults == {"github": (4500.0, 4500.0), "resend": (2.0, 2.0)}
    instances.rates = parse_limits("unused=3/s,github=4500/h")
    limiter = await RateLimiter.open(nc, prefix, instances.rates)
    assert (await limiter.take([Spend("github", 100.0)], 5.0)).taken
    states = {s.name: s for s in await instances.rate_limits()}
    assert states["unused"].tokens == 3.0 and states["unused"].rate == "3/1s"
    assert 4400 <= states["github"].tokens < 4402
