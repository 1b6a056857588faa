"""The gateway against real NATS and a real worker: triggers, events, instances."""

from __future__ import annotations

import asyncio
import gc

import httpx
import inngest

from shared.workflow.control import event_internal_id
from tests.integration.gateway.conftest import (
    AUTH,
    CALLS,
    EVENT_KEY,
    REGISTRY,
    gateway_app,
    serving,
)
from tests.support.engine import running_worker


async def _status(client, workflow: str, instance_id: str) -> dict:
    response = await client.post(
        "/status", headers=AUTH, json={"workflow": workflow, "instanceId": instance_id}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _until(client, workflow: str, instance_id: str, *statuses: str) -> dict:
    """Poll /status until the instance reaches one of `statuses` (bounded, not timed)."""
    for _ in range(1200):
        answer = await _status(client, workflow, instance_id)
        if answer["status"] in statuses:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{workflow}/{instance_id} stuck at {answer}")


async def test_trigger_runs_and_status_reports_the_output(client, nats_url, settings):
    """/trigger → the worker completes it → /status gives the output; a repeat is one run."""
    body = {"workflow": "adder", "params": {"a": 2, "b": 40}, "instanceId": "sum-1"}
    first = await client.post("/trigger", headers=AUTH, json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"success": True, "instanceId": "sum-1", "status": {"status": "queued"}}
    assert (await _status(client, "adder", "sum-1")) == {"status": "queued"}
    async with running_worker(nats_url, REGISTRY, settings):
        done = await _until(client, "adder", "sum-1", "complete", "errored")
        again = await client.post("/trigger", headers=AUTH, json=body)
    assert done == {"status": "complete", "output": {"sum": 42}}
    assert again.json()["status"] == {"status": "complete", "output": {"sum": 42}}
    assert CALLS.count("add:2+40") == 1
    missing = await client.post(
        "/status", headers=AUTH, json={"workflow": "adder", "instanceId": "nope"}
    )
    assert missing.status_code == 404


async def test_events_start_workflows_once_per_event_id(client, nats_url, settings):
    """/e/{key} and /events start the listening workflow (aliases too); an event id sent
    twice is one event and one instance; an event nobody listens to is stored."""
    event = {"name": "math/sum.requested", "data": {"a": 5, "b": 6}, "id": "order-77"}
    first = await client.post("/e/whatever-key", headers=AUTH, json=event)
    second = await client.post("/events", headers=AUTH, json=[event])
    assert first.status_code == second.status_code == 200
    expected = event_internal_id("order-77")
    assert (
        first.json()
        == second.json()
        == {
            "ids": [expected],
            "status": 200,
            "started": [{"eventId": expected, "workflow": "adder", "instanceId": expected}],
        }
    )
    assert (await _status(client, "adder", expected))["status"] == "queued"
    lonely = await client.post(
        "/events", headers=AUTH, json={"name": "audit/nobody.listens", "data": {"x": 1}}
    )
    assert lonely.json()["started"] == []
    async with running_worker(nats_url, REGISTRY, settings):
        done = await _until(client, "adder", expected, "complete", "errored")
    assert done == {"status": "complete", "output": {"sum": 11}}
    assert CALLS.count("add:5+6") == 1
    nc = client.app.state.engine.nc
    js = nc.jetstream()
    names = client.app.state.engine.names
    info = await js.stream_info(names.stream, subjects_filter=f"{names.namespace}.events.>")
    assert info.state.subjects == {
        names.event_subject("math/sum.requested"): 1,
        names.event_subject("audit/nobody.listens"): 1,
    }


async def test_instance_resource(client, nats_url, settings):
    """List, detail with steps, pause, resume, event to a waiting instance, terminate,
    restart — over REST, against a real worker."""
    base = "/workflows/approval/instances"
    created = await client.post(
        base, headers=AUTH, json={"params": {"who": "lea"}, "instanceId": "ap-1"}
    )
    assert created.status_code == 201, created.text
    assert (await client.post(base, headers=AUTH, json={"instanceId": "ap-1"})).status_code == 200
    await client.post(base, headers=AUTH, json={"instanceId": "ap-2"})
    async with running_worker(nats_url, REGISTRY, settings):
        await _until(client, "approval", "ap-1", "waiting")
        await _until(client, "approval", "ap-2", "waiting")
        listed = await client.get(
            "/instances", headers=AUTH, params={"workflow": "approval", "status": "waiting"}
        )
        assert {i["instanceId"] for i in listed.json()["instances"]} == {"ap-1", "ap-2"}
        page = await client.get(base, headers=AUTH, params={"limit": "1"})
        assert len(page.json()["instances"]) == 1 and page.json()["nextCursor"]
        rest = await client.get(
            base, headers=AUTH, params={"limit": "5", "cursor": page.json()["nextCursor"]}
        )
        assert len(rest.json()["instances"]) == 1 and rest.json()["nextCursor"] is None

        detail = (await client.get(f"{base}/ap-1", headers=AUTH)).json()
        ask, wait = detail["steps"]
        assert (ask["name"], ask["status"], ask["attempts"], ask["output"]) == (
            "ask",
            "complete",
            1,
            "asked lea",
        )
        assert ask["startedAt"] and ask["endedAt"] and ask["durationMs"] >= 0
        assert (wait["kind"], wait["status"], wait["event"]) == ("wait", "waiting", "approved")

        paused = await client.patch(f"{base}/ap-2/status", headers=AUTH, json={"status": "pause"})
        assert paused.json()["status"] == "paused"
        resumed = await client.patch(f"{base}/ap-2/status", headers=AUTH, json={"status": "resume"})
        assert resumed.json()["status"] in ("queued", "running", "waiting")
        await _until(client, "approval", "ap-2", "waiting")

        sent = await client.post(
            f"{base}/ap-1/events/approved",
            headers={**AUTH, "Idempotency-Key": "approve-ap-1"},
            json={"by": "ops"},
        )
        assert sent.status_code == 202, sent.text
        done = await _until(client, "approval", "ap-1", "complete", "errored")
        assert done == {"status": "complete", "output": {"approvedBy": "ops"}}

        ended = await client.patch(
            f"{base}/ap-2/status", headers=AUTH, json={"status": "terminate"}
        )
        assert ended.json()["status"] == "terminated"
        late = await client.post(f"{base}/ap-2/events/approved", headers=AUTH, json={"by": "x"})
        assert late.status_code == 409
        again = await client.patch(f"{base}/ap-2/status", headers=AUTH, json={"status": "restart"})
        assert again.json()["generation"] == 1
        await _until(client, "approval", "ap-2", "waiting")


async def test_inngest_sdk_sends_and_starts_a_workflow(nats_url, settings):
    """The real inngest SDK, pointed at the gateway, sends an event that runs a workflow."""
    app = gateway_app(nats_url, settings, event_keys=EVENT_KEY)
    async with serving(app) as url, running_worker(nats_url, REGISTRY, settings):
        sdk = inngest.Inngest(
            app_id="howlerhire-test",
            event_api_base_url=url,
            event_key=EVENT_KEY,
            is_production=False,
        )
        ids = await sdk.send(
            inngest.Event(name="math/add.requested", data={"a": 20, "b": 3}, id="sdk-event-1")
        )
        assert ids == [event_internal_id("sdk-event-1")]
        again = await sdk.send(
            [inngest.Event(name="math/add.requested", data={"a": 20, "b": 3}, id="sdk-event-1")]
        )
        assert again == ids
        async with httpx.AsyncClient(base_url=url, headers=AUTH) as http:
            done = await _until(http, "adder", ids[0], "complete", "errored")
            assert done == {"status": "complete", "output": {"sum": 23}}
            # The SDK's key is a send-only credential: it opens nothing else.
            other = await http.post(
                f"/e/{EVENT_KEY}",
                headers={"Authorization": "Bearer x"},
                json={"name": "math/add.requested"},
            )
            assert other.status_code == 401
        # The SDK has no close(): close its two HTTP clients here, or their sockets are
        # collected unclosed later (a ResourceWarning inside a finalizer).
        await sdk._http_client._http_client.aclose()
        sdk._http_client._http_client_sync.close()
    assert CALLS.count("add:20+3") == 1
    # Collect the SDK now, not inside a later import (CPython 3.11.7 then fails with
    # "AST constructor recursion depth mismatch").
    del sdk
    gc.collect()


async def test_chunked_oversized_body_is_refused_by_the_served_app(nats_url, settings):
    """Through uvicorn, a chunked body (no Content-Length) over the limit → 413."""
    app = gateway_app(nats_url, settings, max_body_bytes=2048)

    async def chunks():
        yield b'{"name":"math/add.requested","data":{"x":"'
        for _ in range(10):
            yield b"a" * 1000
        yield b'"}}'

    async with serving(app) as url, httpx.AsyncClient(base_url=url, headers=AUTH) as http:
        response = await http.post("/events", content=chunks())
        assert response.status_code == 413
        assert response.json() == {"error": "the request body is too large"}
        assert (await http.get("/health")).status_code == 200
