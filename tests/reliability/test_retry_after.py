"""RELIABILITY R8: 20 runs whose Claude step meets three 429s (`Retry-After: 2`, the
recorded rate_limit_error body) from the Anthropic fake, then a 200: every run
completes, no attempt inside the Retry-After window, at most 4 deliveries per run."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.ai import ClaudeAI, JobPosting, create_ai
from shared.ai.settings import AISettings
from shared.bus import Names
from shared.config import load_settings
from shared.workflow import Context, Registry, RetryPolicy, workflow
from shared.workflow.model import decode_run
from tests.support.engine import engine_settings, prepare, running_worker, wait_all
from tests.support.fakes.anthropic import AnthropicFake
from tests.support.fakes.base import RunningFake

RETRY_AFTER = 2.0
RATE_LIMITED = 3
ANTHROPIC_KEY = "sk-ant-FAKE-r8-retry-after"


@pytest.fixture
def anthropic(fixtures_dir: Path) -> Iterator[RunningFake]:
    with RunningFake(AnthropicFake(fixtures_dir)) as fake:
        yield fake


def make_registry(base_url: str) -> Registry:
    async def analyse(run: str) -> list[str]:
        # Each run has its own path prefix (the fake accepts any before /v1/messages), so
        # the fake's 429 script counts that run's requests, not whichever come first.
        env = {"ANTHROPIC_API_KEY": ANTHROPIC_KEY, "ANTHROPIC_BASE_URL": f"{base_url}/r/{run}"}
        ai = create_ai(load_settings(AISettings, env))
        assert isinstance(ai, ClaudeAI)
        async with ai:
            result = await ai.analyze_requirements(
                JobPosting(title="Engineer", company="Acme", description=f"Python. Run {run}.")
            )
        return result.analysis.required_skills

    @workflow("limited", retry=RetryPolicy(limit=5, delay=0.2))
    async def limited(ctx: Context[None], params: dict[str, Any]) -> list[str]:
        return await ctx.step("analyse", analyse, ctx.instance_id)

    return Registry([limited])


@pytest.mark.parametrize("runs", [pytest.param(20, id="20-runs")])
async def test_r8_three_429s_with_retry_after_then_success(nc, nats_url, prefix, anthropic, runs):
    ids = [f"r{i}" for i in range(runs)]
    for iid in ids:
        anthropic.control.fail_next(
            RATE_LIMITED,
            429,
            retry_after=RETRY_AFTER,
            fixture="anthropic/error_429_rate_limit_error.json",
            path=f"^/r/{iid}/",
        )
    registry = make_registry(anthropic.url)
    settings = engine_settings(prefix, ack_wait=2.0, max_deliver=5)
    instances = await prepare(nc, registry, settings)
    names = Names(prefix)
    js = nc.jetstream()
    async with running_worker(nats_url, registry, settings):
        await asyncio.gather(*(instances.trigger("limited", {}, i) for i in ids))
        states, took = await wait_all(instances, "limited", ids, timeout=120)
        consumer = await js.consumer_info(names.stream, names.consumer("limited"))
    done = sum(s.status == "complete" for s in states)
    assert done == runs, f"{done}/{runs} complete: " + str(
        [(s.instance_id, s.status, s.error) for s in states if s.status != "complete"][:3]
    )
    # The fake's view: per run, 3 answers of 429 and then one 200, each attempt at least
    # Retry-After after the one before.
    by_run: dict[str, list[float]] = {}
    for r in anthropic.control.requests("/v1/messages"):
        by_run.setdefault(r["path"].split("/")[2], []).append(r["time"])
    attempts = Counter({run: len(times) for run, times in by_run.items()})
    assert set(attempts) == set(ids) and set(attempts.values()) == {RATE_LIMITED + 1}, attempts
    gaps = [b - a for times in by_run.values() for a, b in itertools.pairwise(sorted(times))]
    inside = [g for g in gaps if g < RETRY_AFTER]
    assert not inside, f"{len(inside)} attempts inside the Retry-After window: {inside[:5]}"
    # Deliveries per run: the run's messages in the work stream (its start and any wake
    # messages), each delivered once, plus every redelivery the consumer made at all
    # (charged to each run: an upper bound).
    per_run: Counter[str] = Counter()
    info = await js.stream_info(names.stream)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await js.get_msg(names.stream, seq)
        if raw.subject in (names.run_subject("limited"), names.wake_subject("limited")):
            per_run[decode_run(raw.data or b"").instance_id] += 1
    messages = sum(per_run.values())
    redeliveries = consumer.delivered.consumer_seq - messages
    worst = max(per_run.values()) + redeliveries
    assert redeliveries >= 0, (consumer.delivered, messages)
    assert worst <= RATE_LIMITED + 1, (
        f"deliveries per run up to {worst} (> 4): messages {dict(per_run)}, "
        f"redeliveries {redeliveries}"
    )
    print(
        f"R8 {runs} runs: {done}/{runs} complete in {took:.1f}s; min gap {min(gaps):.2f}s "
        f"(Retry-After {RETRY_AFTER:g}); deliveries per run <= {worst} "
        f"({messages} messages, {redeliveries} redeliveries)"
    )
