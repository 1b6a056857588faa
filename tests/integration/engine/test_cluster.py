"""HA profile: a 3-node cluster, R3 streams and buckets, the stream leader SIGKILLed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import time
from collections import Counter

import httpx
import nats.errors
import nats.js.errors
import pytest

from shared.bus import Names, connect, publish
from shared.embedded import NatsServer, free_port
from shared.workflow.model import RunMessage, encode
from tests.integration.engine.test_processes import read_ledger, start_worker, wait_started
from tests.support.engine import engine_settings, prepare, wait_all
from tests.support.ledger import RecordWatch
from tests.support.worker_app import REGISTRY


async def replica_last_seqs(servers: list[NatsServer], stream: str) -> dict[str, int]:
    """Each server's own `last_seq` of `stream`, from its monitoring endpoint."""
    seqs = {}
    async with httpx.AsyncClient(timeout=5.0) as http:
        for server in servers:
            jsz = (await http.get(f"{server.monitor_url}/jsz?streams=true")).json()
            for account in jsz.get("account_details", []):
                for detail in account.get("stream_detail", []):
                    if detail["name"] == stream:
                        seqs[server.server_name or ""] = detail["state"]["last_seq"]
    return seqs


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "total"), [("kill", 1000), ("pause", 500)])
async def test_stream_leader_fault_mid_run_loses_and_repeats_nothing(
    tmp_path, prefix, fault, total
):
    """RELIABILITY R12 / R13: the work stream's leader SIGKILLed (back 10 s later) or
    SIGSTOPped for 15 s (the Jepsen pause) halfway through 1,000 / 500 six-step runs, R3
    stream and buckets: no acked event lost, every run completes once, no step recorded
    before the fault runs again (reexec_after_record = 0, from the ledger and the KV
    revision times), publishing is unavailable for ≤ 10 s, and all three replicas hold
    the same `last_seq` within 30 s."""
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
    loop = asyncio.get_running_loop()
    names = Names(prefix)
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
        js = nc.jetstream()
        info = await js.stream_info(names.stream)
        assert info.config.num_replicas == 3
        watch = await RecordWatch.start(nc, names, "chain")
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
        ids = [f"h{i}" for i in range(total)]
        for chunk in range(0, total, 100):
            await asyncio.gather(
                *(instances.trigger("chain", {}, i) for i in ids[chunk : chunk + 100])
            )
        deadline = loop.time() + 300
        while sum(1 for r in read_ledger(ledger) if r[1] == "step-6") < total // 2:
            assert loop.time() < deadline, "half the runs did not finish in 300 s"
            await asyncio.sleep(0.05)

        # Publishing through the fault as the gateway does: a start message whose id is its
        # Nats-Msg-Id (2 s publish timeout), one every 0.1 s, each retried until acked.
        acked: list[float] = []
        extra: list[str] = []
        publishing = True

        async def publisher() -> None:
            n = 0
            while publishing:
                iid = f"p{n}"
                start = encode(RunMessage(kind="start", instance_id=iid, params={}))
                try:
                    await publish(js, names.run_subject("chain"), start, msg_id=iid)
                except Exception:  # unavailable: the same id again, as the gateway does
                    await asyncio.sleep(0.1)
                    continue
                acked.append(loop.time())
                extra.append(iid)
                n += 1
                await asyncio.sleep(0.1)

        pub = asyncio.create_task(publisher())
        await asyncio.sleep(1.0)
        leader = (await js.stream_info(names.stream)).cluster.leader
        victim = next(s for s in servers if s.server_name == leader)
        assert victim.proc is not None
        # Runs whose last step was recorded before the fault (KV revision times).
        fault_wall = time.time()
        done_at_fault = {
            run
            for (run, step), at in watch.recorded.items()
            if step == "step-6" and at < fault_wall
        }
        # The fault lands mid-run: about half done, the rest not.
        assert total // 3 <= len(done_at_fault) < total, len(done_at_fault)
        fault_at = loop.time()
        if fault == "kill":
            victim.kill()
            await asyncio.sleep(10)
            victim.start()
        else:
            victim.proc.send_signal(signal.SIGSTOP)
            await asyncio.sleep(15)
            victim.proc.send_signal(signal.SIGCONT)
        await asyncio.sleep(5)
        publishing = False
        await pub
        stopped_at = loop.time()
        states, _ = await wait_all(instances, "chain", ids + extra, timeout=300)
        assert all(s.status == "complete" for s in states), [
            s for s in states if s.status != "complete"
        ][:3]
        await watch.settle((total + len(extra)) * 6, timeout=60)
        last_seqs: dict[str, int] = {}
        converged = loop.time() + 30
        while loop.time() < converged:
            last_seqs = await replica_last_seqs(servers, names.stream)
            if len(last_seqs) == 3 and len(set(last_seqs.values())) == 1:
                break
            await asyncio.sleep(1.0)
        await nc.drain()
    finally:
        if worker is not None:
            worker.terminate()
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
    assert len(last_seqs) == 3 and len(set(last_seqs.values())) == 1, last_seqs
    rows = read_ledger(ledger)
    counts = Counter((r[0], r[1]) for r in rows)
    assert len(counts) == (total + len(extra)) * 6
    # Runs recorded complete before the fault never run a step again.
    assert not [k for k, n in counts.items() if k[0] in done_at_fault and n > 1]
    late = [r for r in rows if (at := watch.recorded.get((r[0], r[1]))) and r[4] > at]
    assert late == [], f"reexec_after_record = {len(late)}: {late[:5]}"
    # The longest stretch without an acked publish, from just before the fault to the
    # end of publishing (so "nothing acked after the fault" counts as unavailable).
    around = [fault_at - 1.0, *(t for t in acked if t >= fault_at - 1.0), stopped_at]
    worst = max(b - a for a, b in itertools.pairwise(around))
    if fault == "kill":  # R12's criterion; a paused server holds its clients' sockets open
        assert worst <= 10.0, f"publishing unavailable for {worst:.1f}s (> 10 s)"
    repeated = sum(n - 1 for n in counts.values())
    print(
        f"R12/R13 {fault} {total}+{len(extra)} runs: longest publish gap {worst:.1f}s, "
        f"steps repeated (in flight) {repeated}, last_seq {last_seqs}"
    )
