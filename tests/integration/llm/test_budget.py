"""Per-user LLM budgets against a real nats-server: racing reservations, idempotent
settling, and the org-wide limits fed from Anthropic's rate-limit headers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from shared.ai import AISettings, ClaudeAI, JobPosting
from shared.ai.budget import Budgets, BudgetSettings
from shared.ai.ratelimits import REQUESTS, TOKENS, HeaderFeed
from shared.bus import connect
from shared.config import load_settings
from shared.workflow.ratelimit import RateLimiter, parse_limits
from tests.support.fakes import AnthropicFake, RunningFake


async def test_two_racing_workers_never_reserve_over_the_budget(nc, nats_url, prefix):
    """Two processes' worth of clients (own connections, own Budgets) reserve $0.30 forty
    times at once against a $5 budget: exactly 16 are granted, never more."""
    settings = BudgetSettings(llm_budgets="free=5")
    other = await connect(nats_url, "second-worker", attempts=3)
    try:
        a = await Budgets.open(nc, prefix, settings)
        b = await Budgets.open(other, prefix, settings)
        grants = await asyncio.gather(
            *((a if i % 2 else b).reserve("user-1", "free", f"r{i}", 0.30) for i in range(40))
        )
        granted = [g for g in grants if g.granted]
        assert len(granted) == 16
        record = await a.record("user-1")
        assert record is not None
        assert sum(h.amount for h in record.reserved.values()) == 16 * 300_000 <= record.limit
        # Settling frees what was not used; a replayed settle books nothing twice.
        period = granted[0].period
        for grant in granted[:4]:
            await a.settle("user-1", grant.reservation, period, {"cost_usd": 0.05}, "wf")
        again = await b.settle("user-1", granted[0].reservation, period, {"cost_usd": 0.05}, "wf")
        assert again.applied is False
        record = await b.record("user-1")
        assert record is not None and record.spent == 4 * 50_000
        # 12 holds of 0.30 and 0.20 spent: 3.80 of 5 used, so three more fit, not four.
        more = await asyncio.gather(
            *((a, b)[i % 2].reserve("user-1", "free", f"m{i}", 0.30) for i in range(8))
        )
        assert sum(g.granted for g in more) == 4
        # A reservation made again (a replayed step) is the same grant, not a second hold.
        repeat = await a.reserve("user-1", "free", granted[5].reservation, 0.30)
        assert repeat.granted
        record = await a.record("user-1")
        assert record is not None
        assert record.spent + sum(h.amount for h in record.reserved.values()) <= record.limit
        # Another tier's user is not affected; an unlimited tier is always granted.
        assert (await a.reserve("user-2", "free", "x", 4.9)).granted
        assert (await a.reserve("user-3", "premium-unlisted", "x", 1.0)).granted
    finally:
        await other.drain()


async def test_lapsed_holds_of_dead_runs_stop_counting(nc, prefix):
    budgets = await Budgets.open(nc, prefix, BudgetSettings(llm_budgets="free=1"))
    assert (await budgets.reserve("u", "free", "dead-run", 0.9)).granted
    assert not (await budgets.reserve("u", "free", "next", 0.2)).granted
    budgets.clock = lambda: time.time() + 3 * 3600  # the hold's two hours are over
    assert (await budgets.reserve("u", "free", "next", 0.2)).granted


async def test_rate_limit_headers_feed_the_shared_org_limits(
    nc, prefix, fixtures_dir: Path
) -> None:
    """Anthropic says 1 request left, then none: the shared bucket is lowered to what it
    reports and then drained until the reset it gives, for every replica."""
    rates = parse_limits(f"{REQUESTS}=100/min,{TOKENS}=1000000/min")
    limiter = await RateLimiter.open(nc, prefix, rates)
    with RunningFake(AnthropicFake(fixtures_dir)) as fake:
        fake.control.call("POST", "rate-limits", json={"requests": 2, "tokens": 900_000})
        env = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.url}
        async with ClaudeAI(load_settings(AISettings, env)) as ai:
            ai.add_response_listener(HeaderFeed(limiter))
            job = JobPosting(title="Engineer", description="Python and Go.")
            await ai.analyze_requirements(job)
            states = {s.name: s for s in await limiter.states()}
            assert states[REQUESTS].tokens == pytest.approx(1, abs=0.1)
            assert states[REQUESTS].blocked_until is None
            assert states[TOKENS].tokens < 900_000
            await ai.analyze_requirements(job)
    states = {s.name: s for s in await limiter.states()}
    blocked = states[REQUESTS].blocked_until
    assert blocked is not None
    # The fake's window resets at the next whole minute.
    assert 0 < blocked.timestamp() - time.time() <= 61
