"""S7 end to end: with distinctive fake keys set, every stub fails (401, 500, hang past the
timeout) and one run is dead-lettered (its worker SIGKILLed mid-step, MAX_DELIVER 1); no
key, raw or base64 or URL-encoded, is in any process log, HTTP response the test read,
stream message (headers included), KV value (dead letters included) or ledger row."""

from __future__ import annotations

import asyncio
import base64
import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from nats.aio.client import Client as NATS

from shared.db.migrate import migrate
from shared.embedded import free_port
from tests.e2e.test_resume import ANALYSIS, RESUME, seed
from tests.support.engine import all_streams
from tests.support.fakes import AnthropicFake, FakeControl, ResendFake, RunningFake
from tests.support.procs import Proc, spawn, wait_http

MASTER = bytes(range(0x40, 0x60))  # 32 distinctive bytes: the DATA_MASTER_KEYS key
KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant-s7leak-4f1d8c2b9e7a6d5c",
    "RESEND_API_KEY": "re_s7leak_7c3e9a1f5b2d8e4a",
    "GITHUB_TOKEN": "ghp_s7leak0b6e2d9f4a1c7e3b5d",
    "SUPABASE_SERVICE_ROLE_KEY": "sb-s7leak-service-role-9d2f7a4c1e8b",
    "WORKFLOWS_AUTH_TOKEN": "wf-s7leak-token-3a8e1c6f9d2b7e4a",
    "DATA_MASTER_KEYS": "k1:" + base64.urlsafe_b64encode(MASTER).decode().rstrip("="),
    "PROGRESS_TOKEN_KEYS": "p1:s7leak-progress-secret-5e2a9c7f1d4b8e3a6c0f",
}
# The secret part of each value (a `kid:` is no secret) plus the master key's raw bytes.
SECRETS = [v.partition(":")[2] if k.endswith("_KEYS") else v for k, v in KEYS.items()]
WORKFLOW = "resume-generation"
REASON = "max deliveries exceeded"


def forms(secret: bytes) -> list[bytes]:
    """The secret as bytes, base64 (std and url, at each of the 3 alignments) and URL-encoded."""
    found = [secret, urllib.parse.quote(secret, safe="").encode()]
    for shift in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            coded = encode(b"\0" * shift + secret).rstrip(b"=")
            # Drop the characters that also depend on the padding or on a neighbour byte.
            found.append(coded[4 if shift else 0 : -3])
    return found


NEEDLES = [(s, f) for s in SECRETS for f in forms(s.encode())] + [
    ("master raw bytes", f) for f in forms(MASTER)
]


def leaks(blob: bytes) -> list[str]:
    return sorted({name for name, form in NEEDLES if form in blob})


class Seen:
    """Everything the test read, by where it came from."""

    def __init__(self) -> None:
        self.blobs: list[tuple[str, bytes]] = []

    def add(self, where: str, blob: bytes) -> None:
        self.blobs.append((where, blob))

    def response(self, response: httpx.Response) -> httpx.Response:
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items()).encode()
        self.add(f"HTTP {response.request.url.path}", headers + b"\n" + response.content)
        return response

    def found(self) -> dict[str, list[str]]:
        return {where: hit for where, blob in self.blobs if (hit := leaks(blob))}


async def stream_messages(nc: NATS, prefix: str, seen: Seen) -> int:
    """Every message of every stream of the namespace (KV buckets are streams too)."""
    js = nc.jetstream()
    count = 0
    for info in await all_streams(js):
        name = info.config.name or ""
        if prefix not in name:
            continue
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(name, seq)
            except Exception:  # a deleted or purged sequence
                continue
            headers = json.dumps(msg.headers or {}).encode()
            seen.add(f"stream {name} #{seq} {msg.subject}", (msg.subject or "").encode())
            seen.add(f"stream {name} #{seq}", headers + b"\n" + (msg.data or b""))
            count += 1
    return count


@pytest.fixture
async def fakes(fixtures_dir: Path) -> AsyncIterator[tuple[RunningFake, RunningFake]]:
    anthropic = RunningFake(AnthropicFake(fixtures_dir)).start()
    resend = RunningFake(ResendFake(fixtures_dir)).start()
    try:
        yield anthropic, resend
    finally:
        anthropic.stop()
        resend.stop()


async def test_s7_no_key_anywhere_when_every_stub_fails(
    nc, nats_url, prefix, database_url, fixtures_dir, tmp_path, fakes
):
    anthropic_fake, resend_fake = fakes
    anthropic: FakeControl = anthropic_fake.control
    resend: FakeControl = resend_fake.control
    await migrate(database_url)
    seen = Seen()
    # The scan cannot pass vacuously: each form of each key, planted, is found.
    for name, form in NEEDLES:
        assert name in leaks(b'{"error":"x' + form + b'y"}'), (name, form)
    assert leaks(b"nothing secret here") == []

    common = {"NATS_URL": nats_url, "HOWLERHIRE_NAMESPACE": prefix, "LOG_LEVEL": "DEBUG", **KEYS}
    port = free_port()
    procs: list[Proc] = [
        spawn("services.gateway", {**common, "GATEWAY_PORT": str(port)}, tmp_path / "gw.log")
    ]
    service = {
        **common,
        "DATABASE_URL": database_url,
        "ACK_WAIT": "2",
        "MAX_DELIVER": "1",
        "ANTHROPIC_BASE_URL": anthropic_fake.url,
        "RESEND_API_URL": resend_fake.url,
        "EMAIL_FROM": "HowlerHire <jobs@example.com>",
        "RESUME_RETRY_DELAY": "0.2",
    }
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEYS['WORKFLOWS_AUTH_TOKEN']}"}
    http = httpx.AsyncClient(base_url=url, timeout=30, headers=auth)
    db = SimpleNamespace(dsn=database_url)

    async def trigger(tag: str) -> str:
        ids = await seed(db)  # type: ignore[arg-type]
        params = {k: ids[k] for k in ("userId", "jobId", "applicationId")}
        body = {"workflow": WORKFLOW, "params": params, "instanceId": f"s7-{tag}"}
        got = seen.response(await http.post("/trigger", json=body))
        assert got.status_code == 200, got.text
        return str(got.json()["instanceId"])

    async def finished(instance: str, timeout: float = 90) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            got = seen.response(
                await http.post("/status", json={"workflow": WORKFLOW, "instanceId": instance})
            )
            assert got.status_code == 200, got.text
            body: dict[str, Any] = got.json()
            if body["status"] in ("complete", "errored", "terminated"):
                return body
            logs = "\n".join(p.output()[-2000:] for p in procs)
            assert loop.time() < deadline, f"{instance} not finished: {body}\n{logs}"
            await asyncio.sleep(0.2)

    try:
        await wait_http(url, procs[0])
        # 1. Dead letter: the worker hangs in the LLM call and is SIGKILLed; MAX_DELIVER 1.
        first = spawn(
            "services.resume", {**service, "ANTHROPIC_TIMEOUT": "60"}, tmp_path / "r1.log"
        )
        procs.append(first)
        anthropic.script(times=1, delay=20, text="late")
        dlq_run = await trigger("dlq")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while not anthropic.requests("/v1/messages"):
            assert first.alive() and loop.time() < deadline, first.output()
            await asyncio.sleep(0.1)
        first.kill()
        procs.append(
            spawn("services.resume", {**service, "ANTHROPIC_TIMEOUT": "1"}, tmp_path / "r2.log")
        )
        lettered = await finished(dlq_run)
        assert lettered["status"] == "errored", lettered
        assert lettered["error"]["name"] == "MaxDeliveriesExceeded", lettered
        anthropic.reset()

        def echo(kind: str) -> dict[str, Any]:
            message = f"invalid x-api-key {KEYS['ANTHROPIC_API_KEY']}"
            return {"type": "error", "error": {"type": kind, "message": message}}

        # 2-4. A refused key, a 500 on every retry, a reply slower than the timeout.
        outcomes: dict[str, dict[str, Any]] = {}
        for tag, script in (
            ("401", {"status": 401, "json": echo("authentication_error")}),
            ("500", {"status": 500, "json": echo("api_error")}),
            ("timeout", {"delay": 3.0, "text": "late"}),
        ):
            anthropic.script(times=30, **script)
            outcomes[tag] = await finished(await trigger(tag))
            outcomes[tag]["calls"] = len(anthropic.requests("/v1/messages"))
            anthropic.reset()
        # 5. The LLM answers; Resend fails (500 echoing its key): the run still completes.
        anthropic.script(times=1, tool_input=ANALYSIS)
        anthropic.script(times=2, text=RESUME)
        resend.script(
            times=30,
            status=500,
            json={
                "statusCode": 500,
                "name": "application_error",
                "message": KEYS["RESEND_API_KEY"],
            },
        )
        mailed = await finished(await trigger("resend"))
        mail_calls = len(resend.requests("/emails"))

        # The failures happened as forced.
        assert all(o["status"] == "errored" for o in outcomes.values()), outcomes
        assert outcomes["401"]["calls"] == 1, outcomes["401"]  # a refused key is not retried
        assert outcomes["500"]["calls"] >= 2 and outcomes["timeout"]["calls"] >= 2, outcomes
        assert mailed["status"] == "complete" and mail_calls >= 1, (mailed, mail_calls)
        letters = seen.response(await http.get("/dlq", params={"workflow": WORKFLOW}))
        assert letters.status_code == 200, letters.text
        items = letters.json()["deadLetters"]
        assert [(i["instanceId"], i["reason"]) for i in items] == [(dlq_run, REASON)], items
        for item in items:
            got = seen.response(await http.get(f"/dlq/{item['seq']}"))
            assert got.status_code == 200, got.text
        for instance in [dlq_run, *(f"s7-{t}" for t in outcomes), "s7-resend"]:
            got = seen.response(await http.get(f"/workflows/{WORKFLOW}/instances/{instance}"))
            assert got.status_code == 200, got.text
        # A rejected call's answer (a wrong token) must not echo what it was given either.
        seen.response(await http.post("/trigger", json={}, headers={"Authorization": "Bearer x"}))
    finally:
        await http.aclose()
        for proc in procs:
            proc.kill()

    messages = await stream_messages(nc, prefix, seen)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT to_jsonb(a)::text AS row FROM job_applications a")
    finally:
        await conn.close()
    for row in rows:
        seen.add("job_applications", row["row"].encode())
    for n, proc in enumerate(procs):
        seen.add(f"log of process {n}", proc.output().encode())
    http_bodies = sum(where.startswith("HTTP") for where, _ in seen.blobs)
    assert messages >= 20 and http_bodies >= 15 and len(rows) >= 5, (messages, http_bodies)
    assert seen.found() == {}
    # The stream/KV scan finds a key that is there: one planted, base64'd, in a KV value.
    planted = await nc.jetstream().create_key_value(bucket=f"{prefix}_s7plant")
    await planted.put("k", b"x" + base64.b64encode(KEYS["RESEND_API_KEY"].encode()))
    probe = Seen()
    await stream_messages(nc, f"{prefix}_s7plant", probe)
    assert list(probe.found().values()) == [[KEYS["RESEND_API_KEY"]]], probe.found()
    print(
        f"S7: {len(NEEDLES)} key forms, 0 found in {len(procs)} process logs, {http_bodies} HTTP "
        f"responses, {messages} stream/KV messages, {len(rows)} ledger rows; 1 dead letter, "
        f"LLM calls 401={outcomes['401']['calls']} 500={outcomes['500']['calls']} "
        f"timeout={outcomes['timeout']['calls']}, resend calls={mail_calls}"
    )
