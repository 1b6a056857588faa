"""Gate rounds are durable: a worker SIGKILLed mid-round loses only that round."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.gated_app import REGISTRY
from tests.support.procs import spawn


async def test_sigkill_during_a_gate_round_keeps_the_rounds_recorded_before(
    nc, nats_url, prefix, tmp_path: Path
):
    ledger = tmp_path / "ledger.txt"
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "2",
        "LEDGER_FILE": str(ledger),
        "STEP_SLEEP": "30",
    }
    instances = await prepare(nc, REGISTRY, engine_settings(prefix, ack_wait=2.0))

    def rounds() -> list[tuple[str, int]]:
        if not ledger.exists():
            return []
        return [(i, int(r)) for i, r, _ in (ln.split() for ln in ledger.read_text().splitlines())]

    first = spawn("tests.support.gated_app", env, tmp_path / "w1.log")
    try:
        for n in range(3):
            await instances.trigger("gated-chain", {}, f"g{n}")
        for _ in range(600):
            if len([r for r in rounds() if r[1] == 1]) == 3:
                break
            await asyncio.sleep(0.1)
        assert len([r for r in rounds() if r[1] == 1]) == 3, first.output()
        first.kill()  # SIGKILL while every instance is in its second round
    finally:
        first.kill()
    second = spawn("tests.support.gated_app", {**env, "STEP_SLEEP": "0"}, tmp_path / "w2.log")
    try:
        states = [await wait_for(instances, "gated-chain", f"g{n}", timeout=120) for n in range(3)]
    finally:
        second.kill()
    counts = Counter(rounds())
    for n in range(3):
        # Round 0 was recorded before the kill: never run again. Round 1 was in flight:
        # run again by the new process. Round 2 (the fallback) once.
        assert (counts[(f"g{n}", 0)], counts[(f"g{n}", 1)], counts[(f"g{n}", 2)]) == (1, 2, 1)
    for state in states:
        assert state.status == "complete" and state.output == {"text": "good"}
        step = state.steps[0]
        assert [o.round for o in step.outputs] == [0, 1] and not step.needs_review
