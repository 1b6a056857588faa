"""resume-generation's LLM steps against the fake Anthropic server (real wire format, usage,
prompt caching, rate-limit headers), a real worker, NATS and PostgreSQL."""
# ruff: noqa: RUF001  (real resumes and replies use en dashes)

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.gateway.schemas import status_of
from shared.ai.pricing import PriceTable
from shared.ai.settings import DEFAULT_FALLBACK_MODEL, DEFAULT_STRONG_MODEL
from shared.metrics import metrics
from tests.integration.llm.stack import (
    ANALYSIS,
    analysis_requests,
    good_resume,
    llm_stack,
    writer_requests,
)

THINKING = "anthropic/messages_200_thinking_text_tool_use.json"


@pytest.fixture
async def stack(nc, nats_url, prefix, database_url, fixtures_dir: Path, tmp_path: Path):
    async with llm_stack(nc, nats_url, prefix, database_url, fixtures_dir, tmp_path) as s:
        yield s


async def test_a_real_non_resume_reply_is_retried_then_falls_back_then_needs_review(stack):
    """The recorded Claude reply that is a thinking block and unrelated prose: the gate
    rejects it, the retry states the problems, the fallback model gets the last round,
    and the best attempt is kept with every attempt in the record, marked needs_review."""
    ids = await stack.seed()
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=3, fixture=THINKING)
    state = await stack.run(ids, "thinking-1")
    assert state.status == "complete", state.error
    assert state.output["success"] is True and state.output["needsReview"] is True
    written = next(s for s in state.steps if s.name == "generate-resume")
    assert written.needs_review and len(written.outputs) == 3
    assert [o.fallback for o in written.outputs] == [False, False, True]
    for output in written.outputs:
        assert "it has no level-1 heading with the candidate's name: it is not a resume" in (
            output.problems
        )
        assert output.value["markdown"].startswith("I'll help you find the largest city")
    requests = writer_requests(stack.anthropic)
    assert [r["model"] for r in requests] == [
        DEFAULT_STRONG_MODEL,
        DEFAULT_STRONG_MODEL,
        DEFAULT_FALLBACK_MODEL,
    ]
    assert len(requests[0]["messages"][0]["content"]) == 2  # no feedback the first time
    feedback = requests[1]["messages"][0]["content"][-1]["text"]
    assert "checked and rejected" in feedback and "it is not a resume" in feedback
    wire = msgspec_json(status_of(state))
    assert wire["needsReview"] is True and wire["reviewSteps"] == ["generate-resume"]
    # The recorded envelope's usage (398 in, 155 out) x3, priced at Sonnet then Opus rates.
    assert written.usage["input_tokens"] == 3 * 398 and written.usage["output_tokens"] == 3 * 155
    prices = PriceTable()
    expected = 2 * prices.cost(
        "claude-sonnet-4-20250514", {"input_tokens": 398, "output_tokens": 155}
    ) + prices.cost("claude-sonnet-4-20250514", {"input_tokens": 398, "output_tokens": 155})
    assert written.usage["cost_usd"] == pytest.approx(expected)


async def test_an_invented_employer_is_caught_and_the_retry_fixes_it(stack):
    ids = await stack.seed()
    invented = good_resume(extra="\n### Staff Engineer — Initech LLC\n*2014 – 2015*\n\n- Led.\n")
    stack.anthropic.script(times=1, tool_input=ANALYSIS)
    stack.anthropic.script(times=1, text=invented)
    stack.anthropic.script(times=1, text=good_resume())
    state = await stack.run(ids, "invented-1")
    assert state.status == "complete", state.error
    assert state.output["needsReview"] is False
    written = next(s for s in state.steps if s.name == "generate-resume")
    assert not written.needs_review and len(written.outputs) == 1
    problems = written.outputs[0].problems
    assert any("'Initech LLC'" in p for p in problems), problems
    assert any("2014" in p for p in problems), problems
    feedback = writer_requests(stack.anthropic)[1]["messages"][0]["content"][-1]["text"]
    assert "Initech LLC" in feedback
    app = await stack.application(ids)
    assert app["status"] == "ready" and "Initech" not in app["tailored_resume"]


async def test_usage_cost_prompt_cache_and_budget_are_recorded_per_step(stack):
    """Two applications of one user: cache_control is sent on the long prefix, the second
    writing reads it from the cache, each step records its usage and cost, the budget and
    the day's totals add up to exactly those."""
    first = await stack.seed(description="Python and PostgreSQL backend role. Kafka a plus.")
    second = await stack.another_application(first, "Go services on Kubernetes; Kafka.")
    stack.anthropic.call("POST", "default-text", content=good_resume().encode())
    exported = metrics().registry.get_sample_value
    labels = {"workflow": "resume-generation"}
    cost_before = exported("howlerhire_llm_cost_usd_total", labels) or 0.0
    read_before = exported("howlerhire_llm_tokens_total", {**labels, "kind": "cache_read"}) or 0.0
    done = []
    for ids, instance in ((first, "app-1"), (second, "app-2")):
        stack.anthropic.script(times=1, tool_input=ANALYSIS)
        done.append(await stack.run(ids, instance))
    assert [s.status for s in done] == ["complete", "complete"], [s.error for s in done]
    writes = writer_requests(stack.anthropic)
    assert len(writes) == 2 and len(analysis_requests(stack.anthropic)) == 2
    for body in writes:
        assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
        candidate = body["messages"][0]["content"][0]
        assert candidate["cache_control"] == {"type": "ephemeral"}
        assert "<existing_resume>" in candidate["text"]
    usage = [next(s for s in st.steps if s.name == "generate-resume").usage for st in done]
    assert (
        usage[0]["cache_creation_input_tokens"] > 1024 and usage[0]["cache_read_input_tokens"] == 0
    )
    assert usage[1]["cache_read_input_tokens"] == usage[0]["cache_creation_input_tokens"]
    assert usage[1]["cache_creation_input_tokens"] == 0
    prices = PriceTable()
    for row in usage:
        assert row["cost_usd"] == pytest.approx(prices.cost(DEFAULT_STRONG_MODEL, row))
    assert usage[1]["cost_usd"] < usage[0]["cost_usd"]
    # Per step, then per run on the wire, then the user's budget and the day's totals.
    costs = [step.usage["cost_usd"] for st in done for step in st.steps if step.usage is not None]
    assert len(costs) == 4  # two analyses, two writings
    wire = msgspec_json(status_of(done[1]))
    assert wire["usage"]["cost_usd"] == pytest.approx(sum(costs[2:]))
    record = await stack.budgets.record(first["userId"])
    assert record is not None and record.reserved == {}
    assert record.spent == pytest.approx(sum(costs) * 1e6, abs=4)
    totals = await stack.budgets.day_totals(first["userId"], _today())
    row = totals.workflows["resume-generation"]
    assert row["calls"] == 4
    assert row["cache_read_input_tokens"] == usage[1]["cache_read_input_tokens"]
    # /metrics (this process runs the worker): the same spend and cache reads, by workflow.
    cost_after = exported("howlerhire_llm_cost_usd_total", labels) or 0.0
    read_after = exported("howlerhire_llm_tokens_total", {**labels, "kind": "cache_read"}) or 0.0
    assert cost_after - cost_before == pytest.approx(sum(costs), abs=1e-6)
    assert read_after - read_before == usage[1]["cache_read_input_tokens"]


async def test_over_budget_fails_the_run_cleanly(
    nc, nats_url, prefix, database_url, fixtures_dir, tmp_path
):
    """The fail policy: a budget that cannot hold one generation ends the run with
    {success: false, error: 'budget_exceeded'}, no model call, the application marked."""
    async with llm_stack(
        nc, nats_url, prefix, database_url, fixtures_dir, tmp_path, LLM_BUDGETS="free=0.01"
    ) as stack:
        ids = await stack.seed()
        state = await stack.run(ids, "poor-1")
        app = await stack.application(ids)
        requests = stack.anthropic.requests("/v1/messages")
    assert state.status == "complete"
    assert state.output == {"success": False, "error": "budget_exceeded"}
    assert requests == []
    assert app["status"] == "limit_exceeded" and "AI budget" in app["error_message"]


async def test_the_wait_policy_sleeps_until_the_period_resets(
    nc, nats_url, prefix, database_url, fixtures_dir, tmp_path
):
    """A budget already spent this period: the run parks (no worker held) until the
    period's reset, then reserves in the new period and completes."""
    import asyncio
    import time

    async with llm_stack(
        nc,
        nats_url,
        prefix,
        database_url,
        fixtures_dir,
        tmp_path,
        LLM_BUDGETS="free=5",
        LLM_BUDGET_PERIOD="8s",
        LLM_BUDGET_POLICY="resume-generation=wait",
    ) as stack:
        ids = await stack.seed()
        stack.anthropic.call("POST", "default-text", content=good_resume().encode())
        _, _, end = stack.budgets.period(time.time())
        if end.timestamp() - time.time() < 4:  # room to spend and start inside this period
            await asyncio.sleep(end.timestamp() - time.time() + 0.1)
        period, _, end = stack.budgets.period(time.time())
        spent = await stack.budgets.reserve(ids["userId"], "free", "earlier", 4.99)
        assert spent.granted
        await stack.budgets.settle(ids["userId"], "earlier", period, {"cost_usd": 4.99}, "x")
        state = await stack.run(ids, "patient-1", timeout=60)
    assert state.status == "complete", state.error
    assert state.output["success"] is True
    names = [s.name for s in state.steps]
    assert names[:6] == [
        "get-job-details",
        "get-user-data",
        "budget:analyze-requirements",
        "budget-wait:analyze-requirements",
        "budget:analyze-requirements#2",
        "analyze-requirements",
    ]
    wait = state.steps[3]
    assert wait.kind == "sleep" and wait.wake_at is not None
    assert wait.wake_at.timestamp() == pytest.approx(end.timestamp() + 1, abs=0.01)
    analysis = state.steps[5]
    assert analysis.started_at is not None and analysis.started_at >= end


def _today() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).date().isoformat()


def msgspec_json(value: object) -> dict:
    import msgspec

    return json.loads(msgspec.json.encode(value))
