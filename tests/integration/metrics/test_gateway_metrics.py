"""The gateway's request counter: by route template and status, never by raw path."""

from __future__ import annotations

from litestar.testing import AsyncTestClient
from prometheus_client import generate_latest

from shared.config import EngineSettings
from shared.metrics import metrics
from tests.integration.gateway.conftest import AUTH, gateway_app
from tests.integration.metrics.scrape import Samples, parse, value
from tests.support.engine import engine_settings

REQUESTS = "howlerhire_http_requests_total"
INSTANCE = "/workflows/{workflow}/instances/{instance_id}"


def samples() -> Samples:
    return parse(generate_latest(metrics().registry).decode())


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return (value(after, name, **labels) or 0.0) - (value(before, name, **labels) or 0.0)


async def test_requests_are_counted_by_route_template_and_status(
    nats_url: str, prefix: str
) -> None:
    settings: EngineSettings = engine_settings(prefix)
    app = gateway_app(nats_url, settings, event_keys="sdk-key-must-not-show")
    async with AsyncTestClient(app) as client:
        before = samples()
        for iid in ("mx-a", "mx-b", "mx-c"):
            reply = await client.post(
                "/workflows/adder/instances",
                headers=AUTH,
                json={"instanceId": iid, "params": {"a": 1, "b": 2}},
            )
            assert reply.status_code == 201, reply.text
            assert (
                await client.get(f"/workflows/adder/instances/{iid}", headers=AUTH)
            ).status_code == 200
        # Terminated twice: one run ended, counted once, where it happened.
        for _ in range(2):
            stopped = await client.patch(
                "/workflows/adder/instances/mx-a/status", headers=AUTH, json={"status": "terminate"}
            )
            assert stopped.status_code == 200, stopped.text
        missing = await client.get("/workflows/adder/instances/nope-1", headers=AUTH)
        assert missing.status_code == 404
        assert (await client.get("/workflows/adder/instances/mx-a")).status_code == 401
        assert (await client.get("/health")).status_code == 200
        # A wrong event key in the path: refused, and the key never becomes a label.
        refused = await client.post("/e/guessed-key-123", json={"name": "math/add.requested"})
        assert refused.status_code == 401
        after = samples()

    assert delta(before, after, REQUESTS, method="POST", route="/workflows/{workflow}/instances",
                 status="201") == 3  # fmt: skip
    assert delta(before, after, REQUESTS, method="GET", route=INSTANCE, status="200") == 3
    finished = "howlerhire_runs_finished_total"
    assert delta(before, after, finished, workflow="adder", status="terminated") == 1
    assert delta(before, after, REQUESTS, method="GET", route=INSTANCE, status="404") == 1
    assert delta(before, after, REQUESTS, method="GET", route=INSTANCE, status="401") == 1
    assert delta(before, after, REQUESTS, method="GET", route="/health", status="200") == 1
    assert delta(before, after, REQUESTS, method="POST", route="/e/{event_key}", status="401") == 1
    assert delta(before, after, "howlerhire_http_request_duration_seconds_count", method="GET",
                 route=INSTANCE) == 5  # fmt: skip
    routes = {v for (name, labels) in after if name == REQUESTS for k, v in labels if k == "route"}
    # Templates only: no instance id, no event key, no raw path.
    assert not {r for r in routes if "mx-" in r or "nope" in r or "guessed" in r}
    text = generate_latest(metrics().registry).decode()
    assert "guessed-key-123" not in text and "sdk-key-must-not-show" not in text
