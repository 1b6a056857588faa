"""One analysis per job posting, whoever asks: 100 users tailoring to the same ad."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.llm.stack import ANALYSIS, analysis_requests, good_resume, llm_stack
from tests.support.engine import wait_for


async def test_a_hundred_users_on_one_posting_make_one_analysis_call(
    nc, nats_url, prefix, database_url, fixtures_dir: Path, tmp_path: Path
):
    """The posting saved by 100 users (each their own job row; whitespace, case and markup
    differ) is analysed once; every run gets that analysis, 99 of them from the cache."""
    async with llm_stack(
        nc, nats_url, prefix, database_url, fixtures_dir, tmp_path, concurrency=16
    ) as stack:
        stack.anthropic.call("POST", "default-text", content=good_resume().encode())
        stack.anthropic.script(times=1, tool_input=ANALYSIS)
        variants = [
            "Python, PostgreSQL and Kubernetes.  Kafka is a plus.",
            "<p>Python, PostgreSQL and Kubernetes.</p>\n<p>Kafka is a plus.</p>",
            "PYTHON, PostgreSQL and Kubernetes.\n\nKafka is a plus.",
        ]
        seeded = await asyncio.gather(
            *(stack.seed(description=variants[i % 3]) for i in range(100))
        )
        for i, ids in enumerate(seeded):
            params = {k: ids[k] for k in ("userId", "jobId", "applicationId")}
            await stack.instances.trigger(
                "resume-generation", {**params, "skipUsageCheck": True}, f"u{i}"
            )
        states = [
            await wait_for(stack.instances, "resume-generation", f"u{i}", timeout=240)
            for i in range(100)
        ]
        calls = analysis_requests(stack.anthropic)
    assert {s.status for s in states} == {"complete"}, [s.error for s in states if s.error]
    assert len(calls) == 1
    steps = [next(x for x in s.steps if x.name == "analyze-requirements") for s in states]
    assert sorted(step.cached for step in steps) == [False] + [True] * 99
    assert {s.output["matchScore"] for s in states} == {states[0].output["matchScore"]}
