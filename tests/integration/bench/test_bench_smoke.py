"""The benchmarks still run: one tiny round of the floor and the engine (no figures checked)."""

from __future__ import annotations

import pytest

from bench.engine import EngineInProcess
from bench.floor import Floor
from bench.harness import Plan, run_plan, summarise_all

pytestmark = pytest.mark.slow


async def test_floor_and_engine_complete_instances_in_a_tiny_round(nats_url: str) -> None:
    """A round at 1 and at 4 in flight completes instances through both contenders."""
    plan = Plan(
        [Floor(nats_url, "floor"), EngineInProcess(nats_url, "engine")],
        {"c1": 1, "c4": 4},
        duration=0.3,
        rounds=1,
    )
    summary = summarise_all(await run_plan(plan, lambda line: None))
    for name in ("floor", "engine"):
        assert summary[name]["c4"]["workflows_per_s"] > 0
        assert summary[name]["c1"]["p50_ms"] > 0
