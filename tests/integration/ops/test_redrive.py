"""Dead letters: a poison instance, fixed and re-driven, completes once; twice is once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from shared.errors import DeadLetterNotFoundError
from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.ops_app import REGISTRY
from tests.support.procs import Proc, spawn


def ledger(path: Path) -> Counter[tuple[str, str]]:
    lines = path.read_text().split() if path.exists() else []
    return Counter((lines[i], lines[i + 1]) for i in range(0, len(lines), 3))


async def test_poison_message_fixed_and_redriven_completes_once(nc, nats_url, prefix, tmp_path):
    """An instance that kills its worker on every delivery is dead-lettered; after the
    fix, re-driving its letter (twice, at once) runs the crashing step once more and
    completes the instance, without running the step recorded before it again."""
    settings = engine_settings(prefix, ack_wait=1.0, max_deliver=2)
    instances = await prepare(nc, REGISTRY, settings)
    bug = tmp_path / "bug"
    bug.write_text("present")
    book = tmp_path / "ledger.txt"
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "1",
        "MAX_DELIVER": "2",
        "POISON_FILE": str(bug),
        "LEDGER_FILE": str(book),
    }
    await instances.trigger("poison", {}, "p1")
    procs: list[Proc] = []

    def worker() -> Proc:
        proc = spawn("tests.support.ops_app", env, tmp_path / f"worker{len(procs)}.log")
        procs.append(proc)
        return proc

    proc = worker()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120
        page = await instances.dead_letters("poison")
        while not page.items or (await instances.get("poison", "p1")).status != "errored":
            assert loop.time() < deadline, "no dead letter"
            if not proc.alive():
                assert len(procs) <= 10, "too many deliveries of the poison message"
                proc = worker()
            await asyncio.sleep(0.1)
            page = await instances.dead_letters("poison")
        assert ledger(book)[("p1", "risky")] == 2  # MAX_DELIVER deliveries, then given up
        assert len(page.items) == 1
        seq, letter = page.items[0]
        assert (letter.workflow, letter.reason, letter.instance_id) == (
            "poison",
            "max deliveries exceeded",
            "p1",
        )
        assert (await instances.dead_letter(seq)).recorded_at == letter.recorded_at
        assert (await instances.dead_letters("other-workflow")).items == []

        bug.unlink()  # the fix is deployed
        if not proc.alive():
            proc = worker()
        results = await asyncio.gather(
            instances.redrive(seq), instances.redrive(seq), return_exceptions=True
        )
        assert any(not isinstance(r, BaseException) for r in results), results
        assert all(
            not isinstance(r, BaseException) or isinstance(r, DeadLetterNotFoundError)
            for r in results
        ), results
        with pytest.raises(DeadLetterNotFoundError):
            await instances.redrive(seq)  # already re-driven
        done = await wait_for(instances, "poison", "p1", timeout=60)
        assert done.status == "complete"
        assert done.output == "survived"
        # Nothing more is in flight for it: the worker has drained its work stream.
        consumer = await nc.jetstream().consumer_info(
            instances.names.stream, instances.names.consumer("poison")
        )
        for _ in range(100):
            if consumer.num_pending == 0 and consumer.num_ack_pending == 0:
                break
            await asyncio.sleep(0.1)
            consumer = await nc.jetstream().consumer_info(
                instances.names.stream, instances.names.consumer("poison")
            )
        assert (consumer.num_pending, consumer.num_ack_pending) == (0, 0)
    finally:
        proc.terminate()
    counts = ledger(book)
    assert counts[("p1", "prepare")] == 1  # recorded before the crash: never run again
    assert counts[("p1", "risky")] == 3  # two crashes, then one run after the re-drive
    assert (await instances.dead_letters("poison")).items == []
    assert await instances.redrive_all("poison") == 0
