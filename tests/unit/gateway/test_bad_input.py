"""Bad input gets a 4xx JSON error naming the problem; never a 500, never a half start."""

from __future__ import annotations

import subprocess
import sys

import nats.errors
import pytest
from litestar.testing import AsyncTestClient

from services.gateway.config import GatewaySettings
from shared.errors import ConfigError
from tests.unit.gateway.conftest import AUTH, TOKEN, USER, make_app

CASES = [
    # (path, body, status, field)
    ("/trigger", b"", 400, None),
    ("/trigger", b"{", 400, None),
    ("/trigger", b"not json", 400, None),
    ("/trigger", b"\xff\xfe{}", 400, None),
    ("/trigger", b'{"workflow":"\xff"}', 400, None),
    ("/trigger", b'{"workflow":"a\x00"}', 400, None),
    ("/trigger", b"[]", 422, None),
    ("/trigger", b"null", 422, None),
    ("/trigger", b"{}", 422, "workflow"),
    ("/trigger", b'{"workflow":5}', 422, "workflow"),
    ("/trigger", b'{"workflow":""}', 422, "workflow"),
    ("/trigger", b'{"workflow":"job-discovery","params":[1]}', 422, "params"),
    ("/trigger", b'{"workflow":"job-discovery","params":"x"}', 422, "params"),
    ("/trigger", b'{"workflow":"job-discovery","instanceId":"bad id"}', 422, "instanceId"),
    ("/trigger", b'{"workflow":"job-discovery","instanceId":"-x"}', 422, "instanceId"),
    ("/trigger", b'{"workflow":"job-discovery","instanceId":7}', 422, "instanceId"),
    ("/trigger", b'{"workflow":"job-discovery","instanceId":"i1\\n"}', 422, "instanceId"),
    (
        "/trigger",
        b'{"workflow":"job-discovery","params":{"n":' + b"9" * 5000 + b"}}",
        422,
        "params",
    ),
    (
        "/trigger",
        b'{"workflow":"job-discovery","params":{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
        400,
        None,
    ),
    (
        "/trigger",
        b'{"workflow":"job-discovery","params":{"a":' + b"[" * 100 + b"]" * 100 + b"}}",
        422,
        "params",
    ),
    ("/status", b'{"workflow":"job-discovery"}', 422, "instanceId"),
    ("/status", b'{"instanceId":"x"}', 422, "workflow"),
    ("/events", b"[]", 400, None),
    ("/events", b"{}", 422, "name"),
    ("/events", b'{"name":""}', 422, "name"),
    ("/events", b'{"name":"has space"}', 422, "name"),
    ("/events", b'{"name":"a//b"}', 422, "name"),
    ("/events", b'{"name":"a.>"}', 422, "name"),
    ("/events", b'{"name":"a\\u0000b"}', 422, "name"),
    ("/events", b'{"name":"audit\\n"}', 422, "name"),  # `$` alone would let it through
    ("/events", b'{"name":"inngest/function.finished"}', 422, "name"),
    ("/events", b'{"name":"ok","data":[1]}', 422, "data"),
    ("/events", b'{"name":"ok","ts":-1}', 422, "ts"),
    ("/events", b'{"name":"ok","ts":"now"}', 422, "ts"),
    ("/events", b'[{"name":"ok"},{"name":7}]', 422, "[1].name"),
    ("/events", b'[{"name":"ok"},{"data":{}}]', 422, "[1].name"),
    ("/events", b"[" + b",".join([b'{"name":"ok"}'] * 501) + b"]", 413, None),
]


async def test_bad_bodies_are_named_and_start_nothing(client, engine):
    """Each malformed or invalid body → 400/413/422 with the field to blame; no engine call."""
    for path, body, status, field in CASES:
        response = await client.post(path, content=body, headers=AUTH)
        assert response.status_code == status, (path, body[:60], response.text)
        answer = response.json()
        assert isinstance(answer["error"], str) and answer["error"]
        assert answer.get("field") == field, (path, body[:60], answer)
    assert engine.calls == []
    assert engine.instances == {}


async def test_a_bad_event_in_a_list_refuses_the_whole_list(client, engine):
    """Events are all validated before the first is stored."""
    body = b'[{"name":"resume/generation.requested"},{"name":"bad name"}]'
    response = await client.post("/events", content=body, headers=AUTH)
    assert response.status_code == 422
    assert engine.events == []


async def test_instance_routes_refuse_bad_input(client, engine):
    """Unknown workflow → 404, bad query → 400, bad action → 422, finished → 409."""
    await client.post(
        "/trigger",
        headers=AUTH,
        content=b'{"workflow":"job-discovery","instanceId":"i1","params":{"userId":"%s"}}' % USER,
    )
    checks = [
        ("GET", "/workflows/nope/instances", b"", 404, "workflow"),
        ("GET", "/instances?workflow=nope", b"", 404, "workflow"),
        ("GET", "/instances?status=sleeping", b"", 400, "status"),
        ("GET", "/instances?limit=0", b"", 400, "limit"),
        ("GET", "/instances?limit=99999999999999999999", b"", 400, "limit"),
        ("GET", "/instances?limit=abc", b"", 400, "limit"),
        ("GET", "/instances?cursor=-1", b"", 400, "cursor"),
        ("GET", "/instances?cursor=%D9%A3", b"", 400, "cursor"),
        ("GET", "/workflows/job-discovery/instances/missing", b"", 404, "instanceId"),
        ("GET", "/workflows/job-discovery/instances/bad%20id", b"", 404, "instanceId"),
        ("GET", "/workflows/job-discovery/instances/i1%0A", b"", 404, "instanceId"),
        (
            "PATCH",
            "/workflows/job-discovery/instances/i1/status",
            b'{"status":"explode"}',
            422,
            "status",
        ),
        ("PATCH", "/workflows/job-discovery/instances/i1/status", b"{}", 422, "status"),
        (
            "PATCH",
            "/workflows/job-discovery/instances/missing/status",
            b'{"status":"pause"}',
            404,
            "instanceId",
        ),
        (
            "POST",
            "/workflows/job-discovery/instances/i1/events/bad%20type",
            b"{}",
            422,
            "eventType",
        ),
        ("POST", "/workflows/job-discovery/instances/i1/events/ok", b"{", 400, None),
        ("POST", "/workflows/job-discovery/instances/i1/events/ok%0A", b"{}", 422, "eventType"),
        ("POST", "/workflows/nope/instances", b"{}", 404, "workflow"),
        ("POST", "/workflows/job-discovery/instances", b'{"instanceId":"a b"}', 422, "instanceId"),
    ]
    for method, path, body, status, field in checks:
        response = await client.request(method, path, content=body, headers=AUTH)
        assert response.status_code == status, (method, path, response.text)
        assert response.json().get("field") == field, (method, path, response.text)
    await client.patch(
        "/workflows/job-discovery/instances/i1/status",
        headers=AUTH,
        content=b'{"status":"terminate"}',
    )
    response = await client.patch(
        "/workflows/job-discovery/instances/i1/status", headers=AUTH, content=b'{"status":"pause"}'
    )
    assert response.status_code == 409
    response = await client.post(
        "/workflows/job-discovery/instances/i1/events/approved", headers=AUTH, content=b"{}"
    )
    assert response.status_code == 409


async def test_body_limit_with_and_without_content_length(engine):
    """A body over MAX_BODY_BYTES → 413, announced or streamed in chunks; nothing sent."""
    app = make_app(engine, max_body_bytes=4096)
    big = b'{"name":"resume/generation.requested","data":{"x":"' + b"a" * 5000 + b'"}}'

    async with AsyncTestClient(app) as client:
        announced = await client.post("/events", content=big, headers=AUTH)
        assert announced.status_code == 413
        assert announced.json() == {"error": "the request body is too large"}
        # Chunked, without Content-Length: the ASGI app is fed the body piece by piece.
        status, body = await _asgi_post(app, "/events", big, chunk=1000)
        assert status == 413, body
        lying = await client.post("/events", content=big, headers={**AUTH, "Content-Length": "100"})
        assert lying.status_code in (400, 413)
        small = await client.post(
            "/events", headers=AUTH, content=b'{"name":"resume/generation.requested"}'
        )
        assert small.status_code == 200
    assert engine.calls == ["send"]


async def _asgi_post(app, path: str, body: bytes, chunk: int) -> tuple[int, bytes]:
    """POST `body` straight into the ASGI app in `chunk`-byte messages, no Content-Length."""
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    received: list[dict] = []

    async def receive() -> dict:
        if pieces:
            data = pieces.pop(0)
            return {"type": "http.request", "body": data, "more_body": bool(pieces)}
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        received.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1),
        "headers": [
            (b"host", b"testserver"),
            (b"transfer-encoding", b"chunked"),
            (b"authorization", f"Bearer {TOKEN}".encode()),
        ],
    }
    await app(scope, receive, send)
    start = next(m for m in received if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in received if m["type"] == "http.response.body")
    return start["status"], content


async def test_default_body_limit_is_256_kib(client, engine):
    """Without MAX_BODY_BYTES the limit is 256 KiB: one byte more is refused."""
    head, tail = b'{"name":"a","data":{"x":"', b'"}}'
    limit = 256 * 1024
    exact = head + b"a" * (limit - len(head) - len(tail)) + tail
    assert len(exact) == limit
    assert (await client.post("/events", content=exact, headers=AUTH)).status_code == 200
    over = head + b"a" * (limit + 1 - len(head) - len(tail)) + tail
    assert (await client.post("/events", content=over, headers=AUTH)).status_code == 413


async def test_unexpected_errors_leak_nothing(client, engine):
    """A bug behind a route → 500 with only a correlation id: no trace, no message."""
    engine.fail_with = RuntimeError('secret detail File "/site-packages/x.py", line 1')
    response = await client.post("/events", content=b'{"name":"ok"}', headers=AUTH)
    assert response.status_code == 500
    answer = response.json()
    assert set(answer) == {"error", "correlationId"}
    assert answer["error"] == "internal error"
    assert "secret" not in response.text and "RuntimeError" not in response.text


async def test_nats_trouble_is_503_with_retry_after(client, engine):
    """NATS timeouts and disconnects → 503 with Retry-After; health says why."""
    for error in (
        nats.errors.TimeoutError(),
        nats.errors.ConnectionClosedError(),
        nats.errors.NoRespondersError(),
        ConnectionError("not connected"),
    ):
        engine.fail_with = error
        response = await client.post("/events", content=b'{"name":"ok"}', headers=AUTH)
        assert response.status_code == 503, error
        assert response.headers["retry-after"] == "2"
        assert "retry" in response.json()["error"]
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable"
        assert health.json()["nats"]["connected"] is False


async def test_unknown_route_and_method_are_json(client):
    """Unknown paths and methods answer JSON errors too."""
    missing = await client.get("/nope", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]
    wrong = await client.delete("/trigger", headers=AUTH)
    assert wrong.status_code == 405 and wrong.json()["error"]


async def test_settings_refuse_a_missing_or_odd_token():
    """No token, or one with spaces around it, or an absurd body limit, stops the start."""
    for token in ("", " padded "):
        with pytest.raises(ConfigError, match="WORKFLOWS_AUTH_TOKEN"):
            GatewaySettings(workflows_auth_token=token)
    with pytest.raises(ConfigError, match="MAX_BODY_BYTES"):
        GatewaySettings(workflows_auth_token=TOKEN, max_body_bytes=50 * 1024**2)
    assert TOKEN not in repr(GatewaySettings(workflows_auth_token=TOKEN, event_keys="k1"))
    assert "k1" not in repr(GatewaySettings(workflows_auth_token=TOKEN, event_keys="k1"))


async def test_gateway_refuses_to_start_without_the_token():
    """`python -m services.gateway` without WORKFLOWS_AUTH_TOKEN exits 2, naming it."""
    env = {"PATH": "/usr/bin:/bin", "NATS_URL": "nats://127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "services.gateway"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "WORKFLOWS_AUTH_TOKEN" in done.stderr
