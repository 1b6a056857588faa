"""NATS goes away: the gateway answers 503 (and stores nothing behind the caller's back),
then serves again once NATS is back, without a restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from litestar.testing import AsyncTestClient

from shared.embedded import NatsServer
from shared.workflow.control import event_internal_id
from tests.integration.gateway.conftest import AUTH, gateway_app
from tests.support.engine import engine_settings


async def _health(client) -> int:
    return (await client.get("/health")).status_code


async def test_nats_down_answers_503_and_recovers(prefix):
    """While NATS is stopped: /health and /events → 503; after it restarts (same port and
    store): 200, and the retried event is stored exactly once."""
    store = Path(tempfile.mkdtemp(prefix="howlerhire-outage-"))
    server = NatsServer(store).start()
    settings = engine_settings(prefix)
    event = {"name": "math/add.requested", "data": {"a": 1, "b": 1}, "id": "outage-1"}
    try:
        async with AsyncTestClient(gateway_app(server.url, settings)) as client:
            assert await _health(client) == 200
            server.stop()
            for _ in range(200):
                if await _health(client) == 503:
                    break
                await asyncio.sleep(0.05)
            down = await client.get("/health")
            assert down.status_code == 503
            assert down.json()["nats"]["connected"] is False
            refused = await client.post("/events", headers=AUTH, json=event)
            assert refused.status_code == 503
            assert refused.headers["retry-after"]
            assert "Traceback" not in refused.text
            trigger = await client.post(
                "/trigger",
                headers=AUTH,
                json={"workflow": "adder", "params": {"a": 1, "b": 2}, "instanceId": "t-out"},
            )
            assert trigger.status_code == 503
            ghost = await client.post(
                "/trigger", headers=AUTH, json={"workflow": "adder", "params": {"a": 9, "b": 9}}
            )  # no instanceId
            assert ghost.status_code == 503

            await asyncio.to_thread(server.start)
            for _ in range(1200):
                if await _health(client) == 200:
                    break
                await asyncio.sleep(0.05)
            assert await _health(client) == 200
            accepted = await client.post("/events", headers=AUTH, json=event)
            assert accepted.status_code == 200, accepted.text
            assert accepted.json()["ids"] == [event_internal_id("outage-1")]
            again = await client.post(
                "/trigger",
                headers=AUTH,
                json={"workflow": "adder", "params": {"a": 1, "b": 2}, "instanceId": "t-out"},
            )
            assert again.status_code == 200

            engine = client.app.state.engine
            names = engine.names
            info = await engine.js.stream_info(names.stream, subjects_filter=f"{names.namespace}.>")
            # One event and one start message. The id-less event answered 503 is not there:
            # nothing buffered during the outage was sent once NATS came back.
            assert info.state.subjects == {
                names.event_subject("math/add.requested"): 1,
                names.run_subject("adder"): 1,
            }
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)
