"""`validate=` on ctx.step against a real nats-server: feedback rounds, fallback, review."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.metrics import metrics
from shared.workflow import (
    CachePolicy,
    Context,
    Registry,
    RetryPolicy,
    Validate,
    record_usage,
    step_feedback,
    workflow,
)
from shared.workflow.gates import add_gate_listener
from tests.support.engine import engine_settings, prepare, running_worker, wait_for


def gated_registry(answers: list[str], seen: list[dict[str, Any]]) -> Registry:
    """A workflow whose `write` step answers from `answers` in turn; the gate wants "good"."""

    async def write(topic: str) -> dict[str, Any]:
        feedback = step_feedback()
        seen.append(
            {
                "problems": list(feedback.problems) if feedback else [],
                "fallback": bool(feedback and feedback.fallback),
            }
        )
        text = answers[min(len(seen) - 1, len(answers) - 1)]
        record_usage("m-fallback" if feedback and feedback.fallback else "m-main", {"tokens": 10})
        return {"topic": topic, "text": text}

    def check(value: dict[str, Any]) -> list[str]:
        problems = []
        if "good" not in value["text"]:
            problems.append(f"the text {value['text']!r} is not good")
        if "!" in value["text"]:
            problems.append("no exclamation marks")
        return problems

    @workflow("gated", retry=RetryPolicy(limit=2, delay=0.1))
    async def gated(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
        cache = CachePolicy(key=params["topic"], ttl=timedelta(minutes=5))
        result = await ctx.step(
            "write",
            write,
            params["topic"],
            validate=Validate(check, retries=1),
            cache=cache if params.get("cache") else None,
        )
        record = ctx.step_record("write")
        assert record is not None
        return {"text": result["text"], "review": record.needs_review}

    return Registry([gated])


async def test_a_rejected_answer_is_retried_with_its_problems_then_passes(nc, nats_url, prefix):
    seen: list[dict[str, Any]] = []
    registry = gated_registry(["bad", "good"], seen)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("gated", {"topic": "t"}, "g1")
        state = await wait_for(instances, "gated", "g1")
    assert state.status == "complete"
    assert state.output == {"text": "good", "review": False}
    assert seen == [
        {"problems": [], "fallback": False},
        {"problems": ["the text 'bad' is not good"], "fallback": False},
    ]
    step = state.steps[0]
    assert not step.needs_review and not state.needs_review
    assert [(o.round, o.value["text"], o.problems) for o in step.outputs] == [
        (0, "bad", ["the text 'bad' is not good"])
    ]
    assert step.usage == {"tokens": 20, "calls": 2, "models": ["m-main"]}


async def test_retry_then_fallback_then_the_best_attempt_marked_needs_review(nc, nats_url, prefix):
    """Three rejected answers: feedback round, fallback round, then the one with the fewest
    problems is the result, every attempt kept, the instance marked needs_review."""
    seen: list[dict[str, Any]] = []
    verdicts: list[tuple[str, str, str]] = []
    add_gate_listener(lambda *verdict: verdicts.append(verdict))
    exported = metrics().registry.get_sample_value
    review = {"workflow": "gated", "outcome": "needs_review"}
    reviewed_before = exported("howlerhire_llm_gate_verdicts_total", review) or 0.0
    registry = gated_registry(["bad!", "good!", "meh!"], seen)
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("gated", {"topic": "t2", "cache": True}, "g2")
        state = await wait_for(instances, "gated", "g2")
        # A second instance with the same cache key computes again: a needs_review value
        # is never stored in the step cache.
        await instances.trigger("gated", {"topic": "t2", "cache": True}, "g3")
        again = await wait_for(instances, "gated", "g3")
    assert state.status == "complete"
    assert state.output == {"text": "good!", "review": True}
    assert [s["fallback"] for s in seen[:3]] == [False, False, True]
    assert seen[1]["problems"] == ["the text 'bad!' is not good", "no exclamation marks"]
    assert seen[2]["problems"] == ["no exclamation marks"]
    step = state.steps[0]
    assert step.needs_review and state.needs_review
    assert [o.value["text"] for o in step.outputs] == ["bad!", "good!", "meh!"]
    assert [o.fallback for o in step.outputs] == [False, False, True]
    assert step.usage == {"tokens": 30, "calls": 3, "models": ["m-main", "m-fallback"]}
    assert step.attempts == 3 and not step.cached
    assert len(seen) == 6 and not again.steps[0].cached
    # The metrics hook heard each verdict of both instances.
    assert verdicts.count(("gated", "write", "needs_review")) == 2
    assert verdicts.count(("gated", "write", "rejected")) == 6
    reviewed = (exported("howlerhire_llm_gate_verdicts_total", review) or 0.0) - reviewed_before
    assert reviewed == 2  # and /metrics counted them
