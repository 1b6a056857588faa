"""RELIABILITY R10: idle fetch loops cost nothing, leave no orphan pulls, and pick up a
single event at once (nats.py#418, #709, #933)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from shared.bus import Names
from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.procs import spawn
from tests.support.worker_app import REGISTRY

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


@pytest.mark.parametrize(
    "idle",
    [pytest.param(15.0, id="15s"), pytest.param(60.0, id="60s", marks=pytest.mark.slow)],
)
async def test_r10_idle_fetch_loops(nc, nats_url, prefix, tmp_path, idle):
    """Four pull loops on empty consumers for `idle` seconds: the worker uses < 5 % of a
    core, each consumer has at most one waiting pull at every 1 s sample (≤ 4 in all),
    a single event then completes in < 1.0 s, and nothing is logged as an error."""
    names = Names(prefix)
    api = await prepare(nc, REGISTRY, engine_settings(prefix))
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "2",
        "STEP_SLEEP": "0",
        "LEDGER_FILE": str(tmp_path / "ledger.txt"),
    }
    proc = spawn("tests.support.worker_app", env, tmp_path / "worker.log")
    js = nc.jetstream()
    loop = asyncio.get_running_loop()
    try:
        for _ in range(600):
            if "worker started" in proc.output():
                break
            assert proc.alive(), proc.output()
            await asyncio.sleep(0.05)
        assert "worker started" in proc.output(), proc.output()
        await asyncio.sleep(1.0)  # past start-up: measure the idle loops only
        cpu0, t0 = cpu_seconds(proc.pid), loop.time()
        samples: list[dict[str, int]] = []
        while loop.time() - t0 < idle:
            await asyncio.sleep(1.0)
            infos = await asyncio.gather(
                *(js.consumer_info(names.stream, names.consumer(wf.id)) for wf in REGISTRY)
            )
            samples.append({i.name: i.num_waiting or 0 for i in infos})
        share = (cpu_seconds(proc.pid) - cpu0) / (loop.time() - t0)
        t1 = loop.time()
        await api.trigger("chain", {}, "single")
        state = await wait_for(api, "chain", "single", timeout=30)
        pickup = loop.time() - t1
    finally:
        proc.terminate()
    assert share < 0.05, f"idle worker used {share:.1%} of a core (≥ 5 %)"
    worst = max(max(s.values()) for s in samples)
    assert worst <= 1 and max(sum(s.values()) for s in samples) <= 4, samples
    assert len(samples) >= idle * 0.8, f"only {len(samples)} samples in {idle}s"
    assert state.status == "complete", state
    assert pickup < 1.0, f"the single event took {pickup:.3f}s (≥ 1.0 s) after {idle:.0f}s idle"
    log = proc.output()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    print(f"R10 idle {idle:.0f}s: cpu {share:.2%}, max waiting {worst}, pickup {pickup:.3f}s")
