"""RELIABILITY R6: real duplicate deliveries, by ack_wait expiring under a long step with
no heartbeat, to two worker processes: still one recorded result per step, the loser
adopts the winner's, no duplicate row or email."""

from __future__ import annotations

import asyncio

import pytest

from tests.reliability.conftest import start, wait_all, wait_started
from tests.support.fakes.resend import ResendFake
from tests.support.ledger import Ledger, dup_rows


@pytest.mark.parametrize(
    "runs", [pytest.param(10, id="10-runs"), pytest.param(30, id="30-runs", marks=pytest.mark.slow)]
)
async def test_r6_ack_wait_expiry_redelivers_yet_each_step_is_recorded_once(
    rel_instances, rel_env, tmp_path, ledger_dsn, resend, record_watch, runs
):
    env = {**rel_env, "ACK_WAIT": "1", "WF_NO_HEARTBEAT": "1", "STEP_SLEEP": "0"}
    workers = [start(env, tmp_path, n) for n in (1, 2)]
    ids = [f"d{i}" for i in range(runs)]
    try:
        for w in workers:
            await wait_started(w)
        await asyncio.gather(
            *(rel_instances.trigger("ledgered", {"step3": 3.0, "slow": 0}, i) for i in ids)
        )
        states, _ = await wait_all(rel_instances, "ledgered", ids, timeout=180)
    finally:
        for w in workers:
            w.terminate()
    assert all(s.status == "complete" for s in states), [
        s for s in states if s.status != "complete"
    ][:3]
    ledger = await Ledger.read(ledger_dsn)
    counts = ledger.counts()
    raced = {k: n for k, n in counts.items() if k[1] == "step-3" and n > 1}
    # The negative control: each run has one start message, so a second execution is a
    # redelivery (ack_wait expired under the running step): the test sees them.
    assert raced, counts
    pids = {}
    for e in ledger.rows:
        pids.setdefault((e.run_id, e.step), set()).add(e.pid)
    assert any(len(p) == 2 for k, p in pids.items() if k in raced), "no cross-process twin"
    conflicts = 0
    for state in states:
        names = [s.name for s in state.steps]
        assert names == [f"step-{n}" for n in range(1, 7)], names  # one record per step
        # Every step's value in the output is the recorded one: a losing twin adopted it.
        assert state.output["results"] == [s.result for s in state.steps], state.instance_id
        if (state.instance_id, "step-3") in raced:
            conflicts += 1
    assert conflicts == len(raced)
    dup, rows = await dup_rows(ledger_dsn)
    assert rows == runs
    assert dup == 0, f"dup_rows = {dup}"
    fake = resend.app
    assert isinstance(fake, ResendFake)
    assert len(fake.by_key) == runs and set(fake.by_recipient.values()) == {1}, fake.by_recipient
    # Not a criterion of R6 (G4 holds for crashes, R1/R2): twins running at once each
    # act on their own view of the record, so a twin can start a step its sibling has
    # just recorded. Measured and reported; the heartbeat prevents twins (R5).
    await record_watch.settle(runs * 6)
    late = ledger.reexec_after_record(record_watch)
    print(
        f"R6 {runs} runs: step-3 twins in {len(raced)} runs; "
        f"executions after the sibling's record: {len(late)}"
    )
