"""The original web app's client, byte for byte: what it sends and what it reads back."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.workflow import ErrorInfo, InstanceState
from tests.unit.gateway.conftest import A1, J1, R1, TOKEN, U1

# Exactly the headers and bodies of the TypeScript `WorkflowsClient` (`JSON.stringify`
# drops undefined members, keeps key order, adds no spaces).
HEADERS = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
GENERATE = (
    f'{{"workflow":"resume-generation","params":{{"userId":"{U1}","jobId":"{J1}",'
    f'"applicationId":"{A1}","skipUsageCheck":false}}}}'
).encode()
PARSE = (
    f'{{"workflow":"resume-parsing","params":{{"userId":"{U1}","resumeId":"{R1}",'
    f'"fileUrl":"https://x.supabase.co/storage/v1/object/resumes/{U1}/cv.pdf",'
    '"fileType":"pdf"}}'
).encode()
DISCOVER = f'{{"workflow":"job-discovery","params":{{"userId":"{U1}"}}}}'.encode()
DISCOVER_CRITERIA = (
    f'{{"workflow":"job-discovery","params":{{"userId":"{U1}","searchCriteria":'
    '{"keywords":["engineer"],"remote":true}}}'
).encode()
SYNC = (
    f'{{"workflow":"profile-sync","params":{{"userId":"{U1}","githubHandle":"octocat"}}}}'
).encode()
WEEKLY = b'{"workflow":"weekly-summary","params":{}}'


async def test_every_helper_of_the_web_app_triggers(client, engine):
    """Each body the web app's helpers send starts one queued instance, answered as before."""
    for body in (GENERATE, PARSE, DISCOVER, DISCOVER_CRITERIA, SYNC, WEEKLY):
        response = await client.post("/trigger", content=body, headers=HEADERS)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert set(answer) == {"success", "instanceId", "status"}
        assert answer["success"] is True
        assert answer["status"] == {"status": "queued"}
        assert isinstance(answer["instanceId"], str) and answer["instanceId"]
    assert len(engine.instances) == 6
    generated = next(s for s in engine.instances.values() if s.workflow == "resume-generation")
    assert generated.params == {
        "userId": U1,
        "jobId": J1,
        "applicationId": A1,
        "skipUsageCheck": False,
    }


async def test_same_instance_id_twice_is_one_instance(client, engine):
    """A repeated trigger with the same instanceId returns that instance, not a new run."""
    body = (
        f'{{"workflow":"profile-sync","params":{{"userId":"{U1}","githubHandle":"octocat"}},'
        '"instanceId":"sync-u1-1"}'
    ).encode()
    first = await client.post("/trigger", content=body, headers=HEADERS)
    engine.instances[("profile-sync", "sync-u1-1")].status = "running"
    second = await client.post("/trigger", content=body, headers=HEADERS)
    assert first.json()["instanceId"] == second.json()["instanceId"] == "sync-u1-1"
    assert second.json()["status"] == {"status": "running"}
    assert len(engine.instances) == 1


async def test_status_answers_cloudflare_shapes(client, engine):
    """/status gives {status}, {status, output} when complete, {status, error} when errored."""
    now = datetime.now(UTC)
    engine.instances[("resume-generation", "done")] = InstanceState(
        workflow="resume-generation",
        instance_id="done",
        status="complete",
        created_at=now,
        output={"success": True, "matchScore": 80},
    )
    engine.instances[("resume-generation", "bad")] = InstanceState(
        workflow="resume-generation",
        instance_id="bad",
        status="errored",
        created_at=now,
        error=ErrorInfo(name="StepFailedError", message="boom"),
    )
    engine.instances[("resume-generation", "wait")] = InstanceState(
        workflow="resume-generation", instance_id="wait", status="waiting", created_at=now
    )
    expected = {
        "done": {"status": "complete", "output": {"success": True, "matchScore": 80}},
        "bad": {"status": "errored", "error": {"name": "StepFailedError", "message": "boom"}},
        "wait": {"status": "waiting"},
    }
    for iid, answer in expected.items():
        body = b'{"workflow":"resume-generation","instanceId":"%s"}' % iid.encode()
        response = await client.post("/status", content=body, headers=HEADERS)
        assert response.status_code == 200
        assert response.json() == answer


async def test_unknown_workflow_and_instance(client, engine):
    """Unknown workflow → 400 with an `error` string (what the client throws); unknown
    instance → 404; nothing is started."""
    response = await client.post(
        "/trigger", content=b'{"workflow":"nope","params":{}}', headers=HEADERS
    )
    assert response.status_code == 400
    assert response.json() == {"error": "unknown workflow", "field": "workflow"}
    response = await client.post(
        "/status",
        content=b'{"workflow":"resume-generation","instanceId":"missing"}',
        headers=HEADERS,
    )
    assert response.status_code == 404
    assert response.json()["field"] == "instanceId"
    response = await client.post(
        "/status", content=b'{"workflow":"nope","instanceId":"x"}', headers=HEADERS
    )
    assert response.status_code == 400
    assert engine.instances == {}


async def test_health_needs_no_token(client):
    """GET /health answers ok with an ISO-8601 UTC timestamp and NATS reachability."""
    response = await client.get("/health")
    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "ok"
    assert answer["nats"] == {"connected": True}
    assert datetime.fromisoformat(answer["timestamp"]).tzinfo == UTC
    assert answer["timestamp"].endswith("Z")


async def test_inngest_event_shapes(client, engine):
    """/events takes one event or a list and answers {ids, status: 200, started}."""
    one = await client.post(
        "/events",
        headers=HEADERS,
        content=(b'{"name":"resume/generation.requested","data":{"userId":"u1"},"id":"gen-1"}'),
    )
    assert one.status_code == 200
    answer = one.json()
    assert answer["status"] == 200 and len(answer["ids"]) == 1
    assert answer["started"] == [
        {
            "eventId": answer["ids"][0],
            "workflow": "resume-generation",
            "instanceId": answer["ids"][0],
        }
    ]
    many = await client.post(
        "/events",
        headers=HEADERS,
        content=(
            b'[{"name":"jobs/discovery.requested","data":{"userId":"u1"}},'
            b'{"name":"job/discovery.requested","data":{"userId":"u2"}},'
            b'{"name":"audit/nobody.listens","data":{}}]'
        ),
    )
    answer = many.json()
    assert len(answer["ids"]) == 3
    assert [run["workflow"] for run in answer["started"]] == ["job-discovery"] * 2
    assert {run["eventId"] for run in answer["started"]} == set(answer["ids"][:2])
    lonely = await client.post(
        "/events", headers=HEADERS, content=b'{"name":"audit/nobody.listens"}'
    )
    assert lonely.status_code == 200 and lonely.json()["started"] == []
    assert [e.name for e in engine.events][-1] == "audit/nobody.listens"
    assert all(e.ts for e in engine.events)  # filled in when the sender gave none
