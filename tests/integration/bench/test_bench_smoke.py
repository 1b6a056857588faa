"""The benchmarks still run: one tiny round of the floor and the engine, and every script
that `make bench` lists starts and parses its arguments (no figures checked)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.engine import EngineInProcess
from bench.floor import Floor
from bench.harness import Plan, run_plan, summarise_all

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
# Library modules of bench/, not scripts.
NOT_SCRIPTS = {"__init__", "harness", "report", "worker", "profile"}


def make_bench_scripts() -> list[str]:
    makefile = (REPO / "Makefile").read_text()
    found = re.search(r"^BENCHES := (.+)$", makefile, re.MULTILINE)
    assert found, "the Makefile lists the benchmarks in BENCHES"
    return found.group(1).split()


def test_make_bench_lists_every_script() -> None:
    """A new bench script that `make bench` would not run is a mistake."""
    scripts = {p.stem for p in (REPO / "bench").glob("*.py")} - NOT_SCRIPTS
    assert sorted(make_bench_scripts()) == sorted(scripts)


@pytest.mark.parametrize("script", make_bench_scripts())
def test_every_bench_script_imports_and_takes_quick(script: str) -> None:
    """`python -m bench.<script> --quick --help` exits 0: it imports, and --quick exists."""
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{script}", "--quick", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--quick" in done.stdout


async def test_floor_and_engine_complete_instances_in_a_tiny_round(nats_url: str) -> None:
    """A round at 1 and at 4 in flight completes instances through both contenders."""
    plan = Plan(
        [Floor(nats_url, "floor"), EngineInProcess(nats_url, "engine")],
        {"c1": 1, "c4": 4},
        # Long enough that one in flight completes some inside the window on a loaded box
        # (0.3 s saw none for the engine at c1 while c4 ran; 2 s gives p50 ≈ 9 ms).
        duration=1.5,
        rounds=1,
    )
    summary = summarise_all(await run_plan(plan, lambda line: None))
    for name in ("floor", "engine"):
        assert summary[name]["c4"]["workflows_per_s"] > 0, summary
        assert summary[name]["c1"].get("p50_ms", 0) > 0, summary
