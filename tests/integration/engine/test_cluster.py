"""HA profile: a 3-node cluster, R3 streams and buckets, the stream leader SIGKILLed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter

import nats.errors
import nats.js.errors
import pytest

from shared.bus import Names, connect
from shared.embedded import NatsServer, free_port
from tests.integration.engine.test_processes import read_ledger, start_worker, wait_started
from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.worker_app import REGISTRY


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill", "pause"])
async def test_stream_leader_fault_mid_run_loses_and_repeats_nothing(tmp_path, prefix, fault):
    """The work stream's leader SIGKILLed (back 5 s later) or SIGSTOPped for 15 s (the
    Jepsen pause) halfway through 200 runs: every run completes; only steps in flight at
    the fault may run twice (RELIABILITY R12, R13)."""
    ports = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    servers = [
        NatsServer(
            tmp_path / f"n{i}",
            port=ports[i],
            server_name=f"n{i}",
            cluster_port=routes[i],
            routes=tuple(f"nats://127.0.0.1:{routes[j]}" for j in range(3) if j != i),
            log_file=tmp_path / f"n{i}.log",
        )
        for i in range(3)
    ]
    for server in servers:
        server.start()
    url = ",".join(server.url for server in servers)
    ledger = tmp_path / "ledger.txt"
    worker = None
    try:
        nc = await connect(url, "cluster-test", attempts=30)
        settings = engine_settings(prefix, nats_replicas=3)
        for _ in range(120):  # until the cluster has elected its JetStream meta leader
            try:
                instances = await prepare(nc, REGISTRY, settings)
                break
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError):
                await asyncio.sleep(0.5)
        else:
            raise AssertionError("the cluster never formed")
        names = Names(prefix)
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        assert info.config.num_replicas == 3
        env = {
            "NATS_URL": url,
            "HOWLERHIRE_NAMESPACE": prefix,
            "NATS_REPLICAS": "3",
            "ACK_WAIT": "2",
            "MAX_DELIVER": "8",
            "LEDGER_FILE": str(ledger),
            "STEP_SLEEP": "0.05",
            "WORKER_CONCURRENCY": "16",
        }
        worker = start_worker(env, tmp_path, 1)
        await wait_started(worker)
        total = 200
        for i in range(total):
            await instances.trigger("chain", {}, f"h{i}")
        for _ in range(1200):
            if sum(1 for r in read_ledger(ledger) if r[1] == "step-6") >= total // 2:
                break
            await asyncio.sleep(0.05)
        leader = (await js.stream_info(names.stream)).cluster.leader
        victim = next(s for s in servers if s.server_name == leader)
        assert victim.proc is not None
        if fault == "kill":
            victim.kill()
            at_kill = read_ledger(ledger)
            await asyncio.sleep(5)
            victim.start()
        else:
            victim.proc.send_signal(signal.SIGSTOP)
            at_kill = read_ledger(ledger)
            await asyncio.sleep(15)
            victim.proc.send_signal(signal.SIGCONT)
        for i in range(total):
            state = await wait_for(instances, "chain", f"h{i}", timeout=180)
            assert state.status == "complete", state
        await nc.drain()
    finally:
        if worker is not None:
            worker.terminate()
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
    counts = Counter((r[0], r[1]) for r in read_ledger(ledger))
    assert len(counts) == total * 6
    started_at_kill = Counter((r[0], r[1]) for r in at_kill)
    repeated = [key for key, n in counts.items() if n > 1]
    assert all(counts[key] <= 2 for key in repeated)
    # A step that ran twice was in flight at the kill or after it, never one recorded before.
    assert len(repeated) <= 16 * 3, repeated
    assert sum(started_at_kill.values()) > 0
