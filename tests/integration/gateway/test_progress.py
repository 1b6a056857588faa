"""End-user progress through the real gateway, worker and nats-server: tokens, SSE, JSON."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.engine import connect_gateway
from services.gateway.progress import ProgressTokens
from shared.config import EngineSettings
from shared.workflow import Context, Instances, Registry, progress, workflow
from tests.integration.gateway.conftest import serving
from tests.support.engine import engine_settings, prepare, running_worker

TOKEN = "progress-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NEW_KEY = ("k2", b"n" * 40)
OLD_KEY = ("k1", b"o" * 40)  # still listed: tokens it signed stay valid during rotation
RETIRED_KEY = ("k0", b"r" * 40)  # no longer listed
ORIGIN = "https://app.example.com"
SECRET = "private-resume-text-Ada-Lovelace"


async def first(text: str) -> str:
    return f"{text}-1"


async def last(text: str) -> dict[str, Any]:
    return {"score": 7, "note": text}


@workflow(
    "tracked",
    on="tracked/requested",
    progress=progress(
        {"read": "Reading", "wait": "Waiting for you", "finish": "Finishing"},
        summary=("score", "note"),
        failed="Could not finish.",
    ),
)
async def tracked(ctx: Context[None], params: dict[str, Any]) -> dict[str, Any]:
    text = await ctx.step("read", first, params["resume"])
    await ctx.wait_for_event("wait", "go", timedelta(minutes=5))
    result = await ctx.step("finish", last, text)
    return {"score": result["score"], "note": result["note"], "resume": params["resume"]}


REGISTRY = Registry([tracked])


def _app(nats_url: str, settings: EngineSettings, **overrides: Any) -> Litestar:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Instances]:
        nc = await connect_gateway(nats_url)
        try:
            yield await prepare(nc, REGISTRY, settings)
        finally:
            await nc.drain()

    values: dict[str, Any] = {
        "workflows_auth_token": TOKEN,
        "progress_token_keys": ",".join(f"{k}:{v.decode()}" for k, v in (NEW_KEY, OLD_KEY)),
        "cors_origins": ORIGIN,
    }
    values.update(overrides)
    return create_app(GatewaySettings(**values), factory)


@pytest.fixture
def settings(prefix: str) -> EngineSettings:
    return engine_settings(prefix)


@pytest.fixture
async def gateway(nats_url: str, settings: EngineSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serving(_app(nats_url, settings)) as url,
        running_worker(nats_url, REGISTRY, settings),
        httpx.AsyncClient(base_url=url, timeout=60) as client,
    ):
        yield client


async def _start(client: httpx.AsyncClient, instance: str, user: str) -> None:
    response = await client.post(
        "/workflows/tracked/instances",
        json={"instanceId": instance, "params": {"userId": user, "resume": SECRET}},
        headers=AUTH,
    )
    assert response.status_code in (200, 201, 202), response.text


async def _token(client: httpx.AsyncClient, instance: str, user: str) -> str:
    response = await client.post(
        "/progress-tokens",
        json={"workflow": "tracked", "instanceId": instance, "userId": user},
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["url"] == f"/progress/tracked/{instance}?token={body['token']}"
    return str(body["token"])


async def _events(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> tuple[list[tuple[int | None, str, dict[str, Any]]], bytes]:
    """Every SSE event until the server closes the stream, and the raw bytes."""
    raw = b""
    async with client.stream(
        "GET", path, headers={"Accept": "text/event-stream", **(headers or {})}
    ) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for chunk in response.aiter_bytes():
            raw += chunk
    found = []
    for block in raw.decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if "data" in fields:
            seq = int(fields["id"]) if "id" in fields else None
            found.append((seq, fields["event"], msgspec.json.decode(fields["data"])))
    return found, raw


async def _watch_until(client: httpx.AsyncClient, path: str, done: int) -> None:
    """Wait (JSON reads) until the instance's progress shows `done` steps."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = (await client.get(path)).json()
        if body.get("done") == done:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"progress never reached done={done}")


async def test_progress_stream_resumes_and_closes_on_the_final_state(
    gateway: httpx.AsyncClient, nats_url: str, settings: EngineSettings
) -> None:
    await _start(gateway, "p-1", "user-a")
    token = await _token(gateway, "p-1", "user-a")
    path = f"/progress/tracked/p-1?token={token}"
    await _watch_until(gateway, path, 1)  # "read" done, waiting for the event

    json_now = (await gateway.get(path)).json()
    assert json_now == {
        "status": "waiting",
        "step": "wait",
        "label": "Waiting for you",
        "done": 1,
        "total": 3,
        "pct": 33,
        "outcome": None,
        "summary": None,
        "message": None,
    }

    # A live stream: the latest event first, then what follows the event sent below.
    async def follow() -> tuple[list[tuple[int | None, str, dict[str, Any]]], bytes]:
        return await _events(gateway, path)

    watcher = asyncio.create_task(follow())
    await asyncio.sleep(0.5)
    assert not watcher.done()  # still open: the instance waits
    sent = await gateway.post(
        "/workflows/tracked/instances/p-1/events/go", json={"by": "me"}, headers=AUTH
    )
    assert sent.status_code in (200, 202), sent.text
    events, raw = await asyncio.wait_for(watcher, 60)

    assert SECRET.encode() not in raw and b"user-a" not in raw
    kinds = [kind for _, kind, _ in events]
    assert kinds[-1] == "final" and kinds.count("final") == 1
    assert [e["done"] for _, _, e in events] == sorted(e["done"] for _, _, e in events)
    assert events[0][2]["done"] == 1
    final = events[-1][2]
    assert final["outcome"] == "complete" and final["status"] == "complete"
    assert final["summary"] == {"score": 7}  # "note" is a string: never exposed
    assert (final["done"], final["total"], final["pct"]) == (3, 3, 100)
    seqs = [seq for seq, _, _ in events]
    assert all(seq is not None for seq in seqs) and seqs == sorted(seqs)

    # Last-Event-ID resumes after that event: only what came later.
    resumed, _ = await _events(gateway, path, {"Last-Event-ID": str(seqs[0])})
    assert [seq for seq, _, _ in resumed] == seqs[1:]

    # A finished instance answers its final state at once and closes; JSON says the same.
    again, _ = await _events(gateway, path)
    assert [e for _, _, e in again] == [final]
    assert (await gateway.get(path)).json() == final

    # CORS for the app's origin, on the browser's route.
    cors = await gateway.get(path, headers={"Origin": ORIGIN})
    assert cors.headers.get("access-control-allow-origin") == ORIGIN
    other = await gateway.get(path, headers={"Origin": "https://evil.example"})
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


async def test_progress_tokens_are_scoped_expiring_signed_and_rotated(
    gateway: httpx.AsyncClient,
) -> None:
    await _start(gateway, "p-2", "user-b")
    await _start(gateway, "p-3", "user-c")
    token = await _token(gateway, "p-2", "user-b")
    assert (await gateway.get(f"/progress/tracked/p-2?token={token}")).status_code == 200
    # As a header too (the Python client).
    header = {"Authorization": f"Bearer {token}"}
    assert (await gateway.get("/progress/tracked/p-2", headers=header)).status_code == 200

    now = time.time()
    kid, claims, mac = token.split(".")
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    other_claims = ProgressTokens([NEW_KEY]).sign("tracked", "p-3", "user-b", now)[0].split(".")[1]
    cases = {
        "another instance": f"/progress/tracked/p-3?token={token}",
        "expired": "/progress/tracked/p-2?token="
        + ProgressTokens([NEW_KEY], ttl=30).sign("tracked", "p-2", "user-b", now - 60)[0],
        "tampered signature": f"/progress/tracked/p-2?token={kid}.{claims}.{flipped}",
        "tampered claims": f"/progress/tracked/p-3?token={kid}.{other_claims}.{mac}",
        "retired key": "/progress/tracked/p-2?token="
        + ProgressTokens([RETIRED_KEY]).sign("tracked", "p-2", "user-b", now)[0],
        "re-signed with another key's id": "/progress/tracked/p-2?token="
        + ProgressTokens([("k2", RETIRED_KEY[1])]).sign("tracked", "p-2", "user-b", now)[0],
        "no token": "/progress/tracked/p-2",
        "garbage": "/progress/tracked/p-2?token=not.a.token",
        "another user's instance": "/progress/tracked/p-3?token="
        + ProgressTokens([NEW_KEY]).sign("tracked", "p-3", "user-b", now)[0],
    }
    for case, path in cases.items():
        response = await gateway.get(path)
        assert response.status_code == 401, (case, response.text)
        assert "token" in response.json()["error"], case

    # During a rotation, a token the older (still listed) key signed is accepted.
    old = ProgressTokens([OLD_KEY]).sign("tracked", "p-2", "user-b", now)[0]
    assert (await gateway.get(f"/progress/tracked/p-2?token={old}")).status_code == 200

    # Minting needs the bearer token, and the instance must be the user's.
    body = {"workflow": "tracked", "instanceId": "p-2", "userId": "user-b"}
    assert (await gateway.post("/progress-tokens", json=body)).status_code == 401
    wrong = await gateway.post("/progress-tokens", json={**body, "userId": "user-c"}, headers=AUTH)
    assert wrong.status_code == 403, wrong.text
    missing = await gateway.post(
        "/progress-tokens", json={**body, "instanceId": "nope"}, headers=AUTH
    )
    assert missing.status_code == 404, missing.text


async def test_a_terminated_instance_ends_its_stream(gateway: httpx.AsyncClient) -> None:
    await _start(gateway, "p-4", "user-d")
    token = await _token(gateway, "p-4", "user-d")
    path = f"/progress/tracked/p-4?token={token}"
    await _watch_until(gateway, path, 1)
    watcher = asyncio.create_task(_events(gateway, path))
    await asyncio.sleep(0.5)
    response = await gateway.patch(
        "/workflows/tracked/instances/p-4/status", json={"status": "terminate"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    events, _ = await asyncio.wait_for(watcher, 60)
    assert events[-1][1] == "final"
    assert events[-1][2]["outcome"] == "terminated"
    assert events[-1][2]["status"] == "terminated"


async def test_without_keys_progress_answers_503_naming_the_variable(
    nats_url: str, settings: EngineSettings
) -> None:
    async with (
        serving(_app(nats_url, settings, progress_token_keys="")) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        got = await client.get("/progress/tracked/x?token=a.b.c")
        assert got.status_code == 503 and "PROGRESS_TOKEN_KEYS" in got.json()["error"]
        body = {"workflow": "tracked", "instanceId": "x", "userId": "u"}
        minted = await client.post("/progress-tokens", json=body, headers=AUTH)
        assert minted.status_code == 503 and "PROGRESS_TOKEN_KEYS" in minted.json()["error"]


def test_bad_keys_stop_the_gateway_at_start_naming_the_variable() -> None:
    from shared.errors import ConfigError

    for raw in ("k1:short", "nokid", "k1:" + "x" * 40 + ",k1:" + "y" * 40):
        with pytest.raises(ConfigError, match="PROGRESS_TOKEN_KEYS"):
            GatewaySettings(workflows_auth_token=TOKEN, progress_token_keys=raw)


async def test_the_python_client_mints_a_token_and_follows_the_stream(
    gateway: httpx.AsyncClient,
) -> None:
    from shared.client import AuthenticationError, WorkflowsClient

    await _start(gateway, "p-5", "user-e")
    async with WorkflowsClient(str(gateway.base_url), TOKEN) as client:
        minted = await client.progress_token("tracked", "p-5", "user-e")
        await _watch_until(gateway, f"/progress/tracked/p-5?token={minted.token}", 1)
        now = await client.progress("tracked", "p-5", minted.token)
        assert (now.status, now.label, now.done, now.total) == ("waiting", "Waiting for you", 1, 3)

        async def collect() -> list[Any]:
            return [u async for u in client.follow_progress("tracked", "p-5", minted.token)]

        watcher = asyncio.create_task(collect())
        await asyncio.sleep(0.5)
        await gateway.post(
            "/workflows/tracked/instances/p-5/events/go", json={"by": "me"}, headers=AUTH
        )
        updates = await asyncio.wait_for(watcher, 60)
        assert updates[-1].outcome == "complete" and updates[-1].summary == {"score": 7}
        assert all(u.event_id is not None for u in updates)
        # Resuming after the first update yields the rest.
        rest = [
            u
            async for u in client.follow_progress(
                "tracked", "p-5", minted.token, last_event_id=updates[0].event_id
            )
        ]
        assert [u.event_id for u in rest] == [u.event_id for u in updates[1:]]
        with pytest.raises(AuthenticationError):
            await client.progress("tracked", "p-5", minted.token + "x")
