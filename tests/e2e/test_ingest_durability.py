"""Accepted events survive a nats-server SIGKILL in the middle of an ingest burst (G1, G2)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import msgspec

from shared.bus import Names, connect
from shared.embedded import NatsServer, free_port
from tests.support.procs import spawn

TOKEN = "ingest-token-0123456789"
EVENT = "test/ingest.probe"
TOTAL = 300
CLIENTS = 8


async def test_events_acknowledged_before_a_nats_kill_are_all_kept(tmp_path, prefix):
    """SIGKILL of nats-server after half the 2xx answers, back 7 s later: the gateway
    answers 503 meanwhile, clients retry with the same ids; every acknowledged event is
    in the stream exactly once."""
    server = NatsServer(tmp_path / "nats", log_file=tmp_path / "nats.log").start()
    port = free_port()
    gateway = spawn(
        "services.gateway",
        {
            "NATS_URL": server.url,
            "HOWLERHIRE_NAMESPACE": prefix,
            "WORKFLOWS_AUTH_TOKEN": TOKEN,
            "GATEWAY_PORT": str(port),
        },
        tmp_path / "gateway.log",
    )
    base = f"http://127.0.0.1:{port}"
    acknowledged: set[str] = set()
    retried = 0
    killed = asyncio.Event()
    try:
        async with httpx.AsyncClient(timeout=2) as probe:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get(f"{base}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)

        async def client(n: int) -> None:
            nonlocal retried
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(base_url=base, timeout=5, headers=headers) as http:
                for i in range(n, TOTAL, CLIENTS):
                    event_id = f"probe-{i}"
                    body = {"name": EVENT, "data": {"i": i}, "id": event_id}
                    deadline = time.monotonic() + 60
                    while True:
                        try:
                            response = await http.post("/events", json=body)
                            if response.status_code == 200:
                                acknowledged.add(event_id)
                                break
                            assert response.status_code == 503, response.text
                        except httpx.TransportError:
                            pass
                        retried += 1
                        assert time.monotonic() < deadline, f"{event_id} never accepted"
                        await asyncio.sleep(0.2)

        async def killer() -> None:
            while len(acknowledged) < TOTAL // 2:
                await asyncio.sleep(0.005)
            server.kill()
            killed.set()
            # Longer than the gateway's own publish retries (5 s): clients see 503s too.
            await asyncio.sleep(7)
            server.start()  # same port, same store directory

        await asyncio.gather(killer(), *(client(n) for n in range(CLIENTS)))
    finally:
        gateway.kill()
    try:
        assert killed.is_set()
        assert len(acknowledged) == TOTAL
        assert retried > 0, "the kill did not interrupt the burst"
        names = Names(prefix)
        nc = await connect(server.url, "ingest-check", attempts=20)
        try:
            js = nc.jetstream()
            subject = names.event_subject(EVENT)
            sub = await js.pull_subscribe(subject, stream=names.stream)
            stored: list[str] = []
            pending = (await sub.consumer_info()).num_pending
            while pending:
                for msg in await sub.fetch(min(pending, 100), timeout=5):
                    stored.append(msgspec.json.decode(msg.data)["data"]["i"])
                    pending -= 1
        finally:
            await nc.drain()
        assert len(stored) == TOTAL  # nothing lost, nothing stored twice
        assert sorted(stored) == list(range(TOTAL))
    finally:
        server.stop()
