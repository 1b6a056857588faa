"""The Python client against the real gateway app (in-memory engine), and its retries."""

from __future__ import annotations

import httpx
import msgspec
import pytest
from litestar.testing import AsyncTestClient

from shared.client import (
    AuthenticationError,
    Event,
    NotFoundError,
    RequestRejectedError,
    SearchCriteria,
    UnavailableError,
    WorkflowsClient,
)
from shared.errors import AppError
from tests.unit.gateway.conftest import A1, J1, R1, TOKEN, U1, FakeEngine, make_app


async def test_helpers_send_what_the_web_app_sends():
    """generate_resume, parse_resume, discover_jobs, sync_profile: same params, typed answers."""
    engine = FakeEngine()
    app = make_app(engine)
    async with (
        AsyncTestClient(app),
        WorkflowsClient("http://gateway", TOKEN, transport=httpx.ASGITransport(app=app)) as client,
    ):
        generated = await client.generate_resume(U1, J1, A1)
        parsed = await client.parse_resume(U1, R1, f"https://s/resumes/{U1}/cv.pdf", "docx")
        found = await client.discover_jobs(U1, SearchCriteria(keywords=["python"], remote=True))
        plain = await client.discover_jobs(U1)
        synced = await client.sync_profile(U1, "octocat")
        again = await client.trigger(
            "profile-sync", {"userId": U1, "githubHandle": "octocat"}, synced.instance_id
        )
        status = await client.get_status("resume-generation", generated.instance_id)
        sent = await client.send(
            [
                Event(name="jobs/discovery.requested", data={"userId": "u1"}, id="d-1"),
                Event(name="audit/none"),
            ]
        )
    assert generated.success and generated.status.status == "queued"
    assert again.instance_id == synced.instance_id
    assert status.status == "queued" and status.output is None
    params = {(s.workflow, s.instance_id): s.params for s in engine.instances.values()}
    assert params[("resume-generation", generated.instance_id)] == {
        "userId": U1,
        "jobId": J1,
        "applicationId": A1,
        "skipUsageCheck": False,
    }
    assert params[("resume-parsing", parsed.instance_id)]["fileType"] == "docx"
    assert params[("job-discovery", found.instance_id)] == {
        "userId": U1,
        "searchCriteria": {"keywords": ["python"], "remote": True},
    }
    assert params[("job-discovery", plain.instance_id)] == {"userId": U1}
    assert params[("profile-sync", synced.instance_id)] == {
        "userId": U1,
        "githubHandle": "octocat",
    }
    assert len(sent.ids) == 2
    assert [(r.workflow, r.event_id) for r in sent.started] == [("job-discovery", sent.ids[0])]


async def test_errors_are_typed():
    """401, 404 and 400/422 raise their own error types, which carry the field."""
    engine = FakeEngine()
    app = make_app(engine)
    transport = httpx.ASGITransport(app=app)
    async with AsyncTestClient(app):
        async with WorkflowsClient("http://gateway", "wrong", transport=transport) as client:
            with pytest.raises(AuthenticationError):
                await client.get_status("job-discovery", "x")
        async with WorkflowsClient("http://gateway", TOKEN, transport=transport) as client:
            with pytest.raises(NotFoundError) as missing:
                await client.get_status("job-discovery", "x")
            assert missing.value.status == 404 and missing.value.field == "instanceId"
            with pytest.raises(RequestRejectedError) as unknown:
                await client.trigger("nope", {})
            assert unknown.value.field == "workflow"
            with pytest.raises(RequestRejectedError) as bad:
                await client.send(Event(name="not a name"))
            assert bad.value.status == 422 and isinstance(bad.value, AppError)


async def test_only_idempotent_calls_are_retried():
    """503 is retried for trigger (it always has an instance id) and events with ids; an
    id-less event is not resent."""
    calls: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.content)
        if len(calls) % 2 == 1:
            return httpx.Response(503, json={"error": "the event store is unavailable"})
        if request.url.path == "/trigger":
            body = msgspec.json.decode(request.content)
            return httpx.Response(
                200,
                json={
                    "success": True,
                    "instanceId": body["instanceId"],
                    "status": {"status": "queued"},
                },
            )
        return httpx.Response(200, json={"ids": ["ev1"], "status": 200, "started": []})

    async with WorkflowsClient(
        "http://gateway", TOKEN, retry_wait=0.0, transport=httpx.MockTransport(handler)
    ) as client:
        started = await client.trigger("job-discovery", {"userId": U1})
        assert calls[0] == calls[1]  # the same instance id both times
        assert msgspec.json.decode(calls[0])["instanceId"] == started.instance_id
        calls.clear()
        assert (await client.send(Event(name="a/b", id="e1"))).ids == ["ev1"]
        assert len(calls) == 2
        calls.clear()
        with pytest.raises(UnavailableError):
            await client.send(Event(name="a/b"))
        assert len(calls) == 1
