"""Durability with real worker processes: SIGKILL, racing replicas, limits, poison."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from shared.workflow import Instances
from tests.support.engine import engine_settings, prepare, wait_all, wait_for
from tests.support.procs import Proc, spawn
from tests.support.worker_app import REGISTRY


def read_ledger(path: Path) -> list[tuple[str, str, str, int, float]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        iid, step, what, pid, at = line.split()
        rows.append((iid, step, what, int(pid), float(at)))
    return rows


@pytest.fixture
def worker_env(nats_url: str, prefix: str, tmp_path: Path) -> dict[str, str]:
    return {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "ACK_WAIT": "2",
        "MAX_DELIVER": "8",
        "WORKER_CONCURRENCY": "16",
        "SHUTDOWN_GRACE": "10",
        "LEDGER_FILE": str(tmp_path / "ledger.txt"),
        "STEP_SLEEP": "3",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
async def instances(nc, prefix) -> Instances:
    return await prepare(nc, REGISTRY, engine_settings(prefix, ack_wait=2.0))


async def wait_started(proc: Proc) -> None:
    for _ in range(300):
        if "worker started" in proc.output():
            return
        assert proc.alive(), proc.output()
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker did not start: {proc.output()}")


def start_worker(env: dict[str, str], tmp_path: Path, n: int, **extra: str) -> Proc:
    return spawn("tests.support.worker_app", {**env, **extra}, tmp_path / f"worker{n}.log")


async def test_sigkill_mid_step_replacement_finishes_without_rerunning_recorded_steps(
    instances, worker_env, tmp_path
):
    """SIGKILL during step 4 of many instances: a new process finishes them all, and
    steps recorded before the kill never run again."""
    ledger_path = Path(worker_env["LEDGER_FILE"])
    total = 40
    first = start_worker(worker_env, tmp_path, 1)
    try:
        for i in range(total):
            await instances.trigger("chain", {}, f"c{i}")

        async def in_step4() -> int:
            return len({r[0] for r in read_ledger(ledger_path) if r[1] == "step-4"})

        for _ in range(600):
            if await in_step4() >= 10:
                break
            await asyncio.sleep(0.1)
        assert await in_step4() >= 10, first.output()
        first.kill()
        at_kill = read_ledger(ledger_path)
    finally:
        first.kill()
    second = start_worker(worker_env, tmp_path, 2)
    try:
        states, _ = await wait_all(instances, "chain", [f"c{i}" for i in range(total)], 120)
        assert all(s.status == "complete" for s in states), states
    finally:
        second.terminate()
    counts = Counter((r[0], r[1]) for r in read_ledger(ledger_path))
    # In flight at the kill: step 4 started and step 5 not yet.
    in_flight = {r[0] for r in at_kill if r[1] == "step-4"} - {
        r[0] for r in at_kill if r[1] == "step-5"
    }
    for i in range(total):
        iid = f"c{i}"
        for n in (1, 2, 3, 5, 6):
            assert counts[(iid, f"step-{n}")] == 1, (iid, n, counts[(iid, f"step-{n}")])
        # Only the step in flight at the kill may run twice.
        assert counts[(iid, "step-4")] <= (2 if iid in in_flight else 1), iid
    assert any(counts[(iid, "step-4")] == 2 for iid in in_flight), "no step re-ran: kill missed"
    final_pids = {
        p for i in range(total) for p in (await instances.get("chain", f"c{i}")).output["pids"]
    }
    assert second.pid in final_pids


async def test_two_processes_racing_on_one_instance_record_one_result_per_step(
    instances, worker_env, tmp_path, nc, prefix
):
    """Duplicate deliveries of the same instance to two processes: each step's result is
    recorded once, and the final output is built from the recorded results."""
    from shared.bus import Names, publish
    from shared.workflow.model import RunMessage, encode

    names = Names(prefix)
    workers = [start_worker(worker_env, tmp_path, n, STEP_SLEEP="0.5") for n in (1, 2)]
    try:
        for w in workers:  # both pulling before the first message, so both get some
            await wait_started(w)
        js = nc.jetstream()
        ids = [f"r{i}" for i in range(10)]
        for iid in ids:
            message = encode(RunMessage(kind="start", instance_id=iid, params={}))
            # Two distinct messages for one instance: both workers get one each.
            await publish(js, names.run_subject("chain"), message, msg_id=f"{iid}-a")
            await publish(js, names.run_subject("chain"), message, msg_id=f"{iid}-b")
        states, _ = await wait_all(instances, "chain", ids, timeout=90)
    finally:
        for w in workers:
            w.terminate()
    rows = read_ledger(Path(worker_env["LEDGER_FILE"]))
    executions = Counter((r[0], r[1]) for r in rows)
    assert any(v > 1 for v in executions.values()), "the race never happened"
    pids_per_step: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        pids_per_step.setdefault((r[0], r[1]), set()).add(r[3])
    assert any(len(p) == 2 for p in pids_per_step.values()), "no cross-process race"
    for state in states:
        assert state.status == "complete", state
        names_recorded = [s.name for s in state.steps]
        assert names_recorded == [f"step-{n}" for n in range(1, 7)]
        # The output was built from the recorded (winning) step results, not a loser's.
        assert state.output["pids"] == [s.result["pid"] for s in state.steps]


async def test_concurrency_limit_holds_across_two_processes(instances, worker_env, tmp_path):
    """A workflow limited to 2 never has more than 2 runs in a step across 2 processes."""
    workers = [start_worker(worker_env, tmp_path, n) for n in (1, 2)]
    try:
        for w in workers:  # both pulling before the first message, so both get some
            await wait_started(w)
        for i in range(10):
            await instances.trigger("limited", {"hold": 0.4}, f"l{i}")
        states, _ = await wait_all(instances, "limited", [f"l{i}" for i in range(10)], 90)
        assert all(s.status == "complete" for s in states), states
    finally:
        for w in workers:
            w.terminate()
    events = sorted(
        (r[4], 1 if r[2] == "start" else -1)
        for r in read_ledger(Path(worker_env["LEDGER_FILE"]))
        if r[1] == "hold"
    )
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    assert len(events) == 20
    assert peak == 2, peak
    assert len({r[3] for r in read_ledger(Path(worker_env["LEDGER_FILE"]))}) == 2


async def test_sleep_survives_worker_restart_and_is_not_shortened(instances, worker_env, tmp_path):
    """A worker killed while an instance sleeps: a new one wakes it, not before its time."""
    first = start_worker(worker_env, tmp_path, 1)
    try:
        await instances.trigger("sleeper", {"seconds": 4}, "s1")
        waiting = await wait_for(
            instances, "sleeper", "s1", lambda s: s.status == "waiting" and len(s.steps) == 2
        )
    finally:
        first.kill()
    second = start_worker(worker_env, tmp_path, 2)
    try:
        done = await wait_for(instances, "sleeper", "s1", timeout=60)
    finally:
        second.terminate()
    nap = waiting.steps[1]
    assert done.status == "complete"
    assert nap.wake_at is not None and nap.started_at is not None
    assert (nap.wake_at - nap.started_at).total_seconds() == pytest.approx(4, abs=0.01)
    after = [r for r in read_ledger(Path(worker_env["LEDGER_FILE"])) if r[1] == "after"]
    assert len(after) == 1
    assert after[0][4] >= nap.wake_at.timestamp()
    assert after[0][3] == second.pid


async def test_poison_instance_is_dead_lettered_after_bounded_deliveries(
    instances, worker_env, tmp_path, nc, prefix
):
    """An instance that kills its worker every time is delivered max_deliver times, then
    dead-lettered and marked errored; the healthy ones complete."""
    from nats.js.api import ConsumerConfig

    from shared.bus import Names
    from shared.workflow.topology import consumer_config

    names = Names(prefix)
    settings = engine_settings(prefix, ack_wait=1.0, max_deliver=3)
    spec = next(wf for wf in REGISTRY if wf.id == "crasher")
    config: ConsumerConfig = consumer_config(names, spec, settings)
    await nc.jetstream().add_consumer(names.stream, config)
    env = {**worker_env, "ACK_WAIT": "1", "MAX_DELIVER": "3"}
    await instances.trigger("crasher", {"crash": True}, "poison")
    for i in range(20):
        await instances.trigger("crasher", {}, f"ok{i}")
    restarts = 0
    proc = start_worker(env, tmp_path, 0)
    try:
        for _ in range(1200):
            state = await instances.get("crasher", "poison")
            if state.status == "errored":
                break
            if not proc.alive():
                restarts += 1
                assert restarts <= 10, "too many deliveries of the poison message"
                proc = start_worker(env, tmp_path, restarts)
            await asyncio.sleep(0.1)
        states, _ = await wait_all(instances, "crasher", [f"ok{i}" for i in range(20)], 60)
        assert all(s.status == "complete" for s in states), states
    finally:
        proc.terminate()
    state = await instances.get("crasher", "poison")
    assert state.status == "errored"
    assert state.error is not None and state.error.name == "MaxDeliveriesExceeded"
    booms = [r for r in read_ledger(Path(worker_env["LEDGER_FILE"])) if r[0] == "poison"]
    assert len(booms) == 3
    info = await nc.jetstream().stream_info(names.dlq_stream)
    assert info.state.messages == 1


async def test_sigterm_lets_in_flight_runs_finish(instances, worker_env, tmp_path):
    """SIGTERM mid-step: the worker stops fetching, finishes its runs, exits 0."""
    proc = start_worker(worker_env, tmp_path, 1)
    ledger_path = Path(worker_env["LEDGER_FILE"])
    ids = [f"t{i}" for i in range(5)]
    try:
        await wait_started(proc)
        for iid in ids:
            await instances.trigger("chain", {}, iid)
        for _ in range(600):
            if len({r[0] for r in read_ledger(ledger_path) if r[1] == "step-4"}) == 5:
                break
            await asyncio.sleep(0.05)
        at_term = read_ledger(ledger_path)
        # All five inside the 3 s step 4 when the signal lands, none past it yet.
        assert {r[0] for r in at_term if r[1] == "step-4"} == set(ids), at_term
        assert not [r for r in at_term if r[1] == "step-5"], at_term
        proc.popen.send_signal(15)
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        proc.kill()
    assert code == 0, proc.output()
    for iid in ids:
        state = await instances.get("chain", iid)
        assert state.status == "complete", state
        # Finished by this process, not handed to another one.
        assert set(state.output["pids"]) == {proc.pid}, state.output
    counts = Counter((r[0], r[1]) for r in read_ledger(ledger_path))
    assert set(counts.values()) == {1} and len(counts) == 5 * 6, counts
    assert "worker stopped" in proc.output()


async def test_unreachable_nats_is_retried_and_reported(worker_env, tmp_path):
    """A worker started before its NATS says so, keeps trying, and connects when it is up."""
    from shared.embedded import NatsServer, free_port

    port = free_port()
    env = {**worker_env, "NATS_URL": f"nats://127.0.0.1:{port}"}
    proc = start_worker(env, tmp_path, 1)
    server = None
    try:
        for _ in range(300):
            if "is unreachable" in proc.output():
                break
            await asyncio.sleep(0.05)
        assert f"NATS at nats://127.0.0.1:{port} is unreachable" in proc.output()
        assert proc.alive()
        server = NatsServer(tmp_path / "late-nats", port=port).start()
        await wait_started(proc)
        assert proc.terminate() == 0
    finally:
        proc.kill()
        if server is not None:
            server.stop()


async def test_durability_self_check_refuses_a_lazy_fsync_server(worker_env, tmp_path):
    """Against a server without sync_always, a worker refuses to start unless told to."""
    from shared.embedded import NatsServer

    server = NatsServer(tmp_path / "lazy", sync_always=False).start()
    try:
        env = {**worker_env, "NATS_URL": server.url, "NATS_MONITOR_URL": server.monitor_url}
        refused = start_worker(env, tmp_path, 1)
        code = await asyncio.to_thread(refused.wait, 60)
        assert code == 2
        assert "does not fsync before acknowledging" in refused.output()
        accepted = start_worker({**env, "DURABILITY": "any"}, tmp_path, 2)
        await wait_started(accepted)
        assert "durability self-check: sync_always=False (profile any)" in accepted.output()
        assert accepted.terminate() == 0
    finally:
        server.stop()


@pytest.mark.parametrize(
    "point", ["after_record", "after_last_step_before_ack", "before_ack", "after_ack_sync"]
)
async def test_crash_at_each_named_point_loses_nothing_and_repeats_nothing(
    instances, worker_env, tmp_path, point
):
    """A worker killed at a named point of the run: the next one completes every instance
    and no recorded step runs again."""
    ledger_path = Path(worker_env["LEDGER_FILE"])
    crashing = start_worker(
        worker_env, tmp_path, 1, WF_CRASH_AT=point, WORKER_CONCURRENCY="1", STEP_SLEEP="0"
    )
    try:
        for i in range(5):
            await instances.trigger("chain", {}, f"{point}-{i}")
        code = await asyncio.to_thread(crashing.wait, 60)
    finally:
        crashing.kill()
    assert code == 137, crashing.output()
    assert f"WF_CRASH_AT={point}" in crashing.output()
    survivor = start_worker(worker_env, tmp_path, 2, STEP_SLEEP="0")
    try:
        states, _ = await wait_all(instances, "chain", [f"{point}-{i}" for i in range(5)], 60)
        assert all(s.status == "complete" for s in states), states
    finally:
        survivor.terminate()
    counts = Counter((r[0], r[1]) for r in read_ledger(ledger_path))
    assert len(counts) == 5 * 6
    assert set(counts.values()) == {1}, counts


async def test_idle_worker_survives_nats_restarts(worker_env, tmp_path):
    """RELIABILITY R9: NATS restarted twice (SIGTERM, then SIGKILL) under an idle worker
    (4 pull loops): 100 events published 2 s after each restart are all processed within
    10 s of it, without restarting the worker, and it reconnected once per restart
    (nats.py#504)."""
    from shared.bus import connect
    from shared.embedded import NatsServer

    server = NatsServer(tmp_path / "private-nats", log_file=tmp_path / "nats.log").start()
    env = {**worker_env, "NATS_URL": server.url, "STEP_SLEEP": "0"}
    worker = start_worker(env, tmp_path, 1)
    loop = asyncio.get_running_loop()
    figures = []
    try:
        await wait_started(worker)
        for round_no, stop in enumerate((server.stop, server.kill)):
            stop()
            server.start()  # same port, same store directory
            restarted = loop.time()
            nc = await connect(server.url, "test-client", attempts=20)
            try:
                api = await prepare(
                    nc, REGISTRY, engine_settings(worker_env["HOWLERHIRE_NAMESPACE"])
                )
                await asyncio.sleep(max(0.0, restarted + 2.0 - loop.time()))
                ids = [f"r{round_no}-{i}" for i in range(100)]
                await asyncio.gather(*(api.trigger("chain", {}, iid) for iid in ids))
                states, _ = await wait_all(api, "chain", ids, timeout=60)
                took = loop.time() - restarted
            finally:
                await nc.drain()
            assert all(s.status == "complete" for s in states), states
            assert took <= 10.0, f"100 events took {took:.1f}s after restart {round_no} (> 10 s)"
            figures.append(round(took, 1))
            assert worker.alive()
            reconnects = worker.output().count("reconnected")
            assert reconnects >= round_no + 1, worker.output()
    finally:
        worker.kill()
        server.stop()
    print(f"R9: processed within {figures} s of each restart")


async def test_burst_of_5000_with_two_workers_completes_without_redelivery(
    instances, worker_env, tmp_path, nc, prefix
):
    """5,000 starts published at once to 2 workers: all complete, nothing redelivered,
    no slow-consumer error, a worker stays small (RELIABILITY R11)."""

    from shared.bus import Names, publish
    from shared.workflow.model import RunMessage, encode

    names = Names(prefix)
    env = {**worker_env, "STEP_SLEEP": "0", "WORKER_CONCURRENCY": "16"}
    workers = [start_worker(env, tmp_path, n) for n in (1, 2)]
    try:
        for w in workers:
            await wait_started(w)
        js = nc.jetstream()
        total = 5000
        for chunk in range(0, total, 500):
            await asyncio.gather(
                *(
                    publish(
                        js,
                        names.run_subject("chain"),
                        encode(RunMessage(kind="start", instance_id=f"b{i}", params={})),
                        msg_id=f"b{i}",
                    )
                    for i in range(chunk, chunk + 500)
                )
            )
        for _ in range(3000):
            info = await js.consumer_info(names.stream, names.consumer("chain"))
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.1)
        assert info.num_pending == 0 and info.num_ack_pending == 0
        assert info.num_redelivered == 0
        # Every one of the 5,000, not a sample.
        states = await asyncio.gather(*(instances.get("chain", f"b{i}") for i in range(total)))
        incomplete = [s.instance_id for s in states if s.status != "complete"]
        assert incomplete == [], f"{len(incomplete)} of {total} not complete: {incomplete[:5]}"
        rss_kib = []
        for w in workers:
            status = Path(f"/proc/{w.pid}/status").read_text()
            rss_kib.append(
                int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
            )
    finally:
        for w in workers:
            w.terminate()
    assert max(rss_kib) < 300 * 1024, rss_kib
    for w in workers:
        assert "SlowConsumer" not in w.output()
