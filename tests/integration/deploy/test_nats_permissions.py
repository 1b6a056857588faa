"""RELIABILITY S5: every NATS identity can do its work and nothing else.

A real nats-server runs with the authorization block that `howlerhire nats-config`
writes from shared/natsauth.py. The admin creates the topology; the gateway, a worker
and the scheduler then do their real work, and every forbidden operation is denied with
a permissions violation and changes nothing (stream configurations hash the same, no
message stored).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client as NATS

from services.demo.workflows import greet
from services.gateway.engine import nats_engine
from shared.bus import Names, ensure_bucket
from shared.catalog import CATALOG
from shared.embedded import NatsServer
from shared.health import check_nats
from shared.natsauth import (
    ADMIN,
    GATEWAY,
    SCHEDULER,
    identities,
    password_variable,
    read_env_file,
    setup_topology,
    user_url,
    write_config,
)
from shared.workflow import Instances, Registry, Worker
from tests.support.engine import all_streams, engine_settings, wait_for

NS = "hh"


@dataclass
class AuthServer:
    server: NatsServer
    passwords: dict[str, str]
    store: Path

    def url(self, user: str, password: str | None = None) -> str:
        return user_url(self.server.url, user, password or self.passwords[user])


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    store = Path(tempfile.mkdtemp(prefix="howlerhire-nats-auth-"))
    env_file = store / "credentials.env"
    auth = store / "auth.conf"
    write_config(auth, env_file, Names(NS))
    server = NatsServer(store / "nats", auth_file=auth, log_file=store / "server.log")
    server.start()
    try:
        secrets = read_env_file(env_file)
        users = [ident.user for ident in identities(Names(NS))]
        yield AuthServer(server, {u: secrets[password_variable(u)] for u in users}, store)
    finally:
        server.stop()
        shutil.rmtree(store, ignore_errors=True)


@dataclass
class Client:
    """A connection as one identity that records the server's permission errors."""

    nc: NATS
    errors: list[str] = field(default_factory=list)

    async def denied(self, what: str, timeout: float = 10.0) -> str:
        """Wait for the server's permissions violation that names `what`."""
        await self.nc.flush()
        for _ in range(int(timeout / 0.05)):
            for err in self.errors:
                # nats-py lower-cases the server's message.
                if "permissions violation" in err.lower() and f'"{what.lower()}"' in err.lower():
                    return err
            await asyncio.sleep(0.05)
        raise AssertionError(f"no permissions violation for {what!r}; errors: {self.errors}")


@pytest.fixture
async def connect_as(auth_server: AuthServer) -> AsyncIterator:  # type: ignore[type-arg]
    opened: list[Client] = []

    async def open_client(user: str) -> Client:
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        from shared.bus import inbox_prefix

        nc = await nats.connect(
            auth_server.url(user),
            error_cb=on_error,
            allow_reconnect=False,
            inbox_prefix=inbox_prefix(user),
        )
        client = Client(nc, errors)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        if not client.nc.is_closed:
            await client.nc.close()


async def _stream_hashes(nc: NATS) -> dict[str, str]:
    js = nc.jetstream()
    hashes = {}
    for name in await all_streams(js):
        config = json.dumps(name.config.as_dict(), sort_keys=True, default=str)
        hashes[name.config.name or ""] = hashlib.sha256(config.encode()).hexdigest()
    return hashes


async def _consumers(nc: NATS, stream: str) -> list[str]:
    return sorted(c.name for c in await nc.jetstream().consumers_info(stream))


async def test_each_identity_does_its_work_and_nothing_else(auth_server, connect_as):
    names = Names(NS)
    admin_settings = engine_settings(NS, nats_url=auth_server.url(ADMIN))
    made = await setup_topology(admin_settings)
    assert names.stream in made and f"{names.stream}/{names.consumer('demo-greeting')}" in made
    admin = await connect_as(ADMIN)
    before = await _stream_hashes(admin.nc)
    assert {names.stream, names.timer_stream, names.dlq_stream} <= before.keys()
    consumers_before = await _consumers(admin.nc, names.stream)
    assert len(consumers_before) == len(CATALOG)

    # Work: the gateway's start-up (topology check, consumers) and a trigger; the demo
    # worker runs it (steps, a durable sleep through the timer stream); the scheduler
    # publishes a cron event.
    gateway_settings = engine_settings(NS, nats_url=auth_server.url(GATEWAY))
    async with nats_engine(gateway_settings) as engine:
        assert isinstance(engine, Instances)
        demo_nc = await connect_as("demo")
        worker = Worker(demo_nc.nc, Registry([greet]), None, engine_settings(NS, nats_url="unused"))
        task = asyncio.create_task(worker.run())
        try:
            await engine.trigger("demo-greeting", {"name": "Ada", "pause_seconds": 0.2}, "s5-1")
            done = await wait_for(engine, "demo-greeting", "s5-1", timeout=60)
            assert done.status == "complete", done
            assert done.output["greeting"].startswith("Hello, Ada!")
            listed = await engine.list("demo-greeting")
            assert any(item.instance_id == "s5-1" for item in listed.items)
        finally:
            worker.stop()
            await asyncio.wait_for(task, 30)
        assert demo_nc.errors == []
    scheduler = await connect_as(SCHEDULER)
    ack = await scheduler.nc.jetstream().publish(
        names.event_subject("cron/daily-discovery"), b"{}", timeout=10
    )
    assert ack.stream == names.stream
    assert scheduler.errors == []

    # A worker keeps the engine's shared buckets (the step cache) itself.
    cache = await ensure_bucket(demo_nc.nc.jetstream(), f"{NS}_step_cache")
    await cache.put("demo-greeting.compose", b"cached")
    assert (await cache.get("demo-greeting.compose")).value == b"cached"

    # The container health checks, with each identity's own credentials.
    assert await check_nats("demo", auth_server.url("demo"), NS) is None
    assert await check_nats(SCHEDULER, auth_server.url(SCHEDULER), NS) is None
    problem = await check_nats("demo", auth_server.url("demo", "wrong"), NS)
    assert problem is not None and "did not accept" in problem

    messages_before = (await admin.nc.jetstream().stream_info(names.stream)).state.messages
    update = json.dumps(
        {**(await admin.nc.jetstream().stream_info(names.stream)).config.as_dict(), "max_msgs": 1}
    ).encode()
    work_consumer = names.consumer("resume-generation")
    forbidden_for_all = [
        f"$JS.API.STREAM.DELETE.{names.stream}",
        f"$JS.API.STREAM.UPDATE.{names.stream}",
        f"$JS.API.STREAM.PURGE.{names.stream}",
        f"$JS.API.STREAM.DELETE.KV_{names.state_bucket}",
        f"$JS.API.CONSUMER.DELETE.{names.stream}.{work_consumer}",
        f"$JS.API.CONSUMER.DURABLE.CREATE.{names.stream}.evil",
        "$JS.API.STREAM.CREATE.evil",
        f"$KV.{names.meta_bucket}.evil",  # another bucket
    ]
    forbidden = {
        GATEWAY: [
            *forbidden_for_all,
            f"$JS.API.CONSUMER.MSG.NEXT.{names.stream}.{work_consumer}",  # a worker's queue
            f"$JS.ACK.{names.stream}.{work_consumer}.1.1.1.1.1",
            names.timer_subject("demo-greeting", "x", "y"),
            names.dlq_subject("demo-greeting"),
        ],
        "demo": [
            *forbidden_for_all,
            f"$KV.{names.state_bucket}.resume-generation.x",  # another workflow's record
            f"$KV.{NS}_parsing_memo.x",  # another service's bucket
            f"$JS.API.STREAM.CREATE.KV_{NS}_parsing_memo",
            f"$JS.API.STREAM.DELETE.KV_{NS}_step_cache",  # may create, never delete
            names.run_subject("resume-generation"),  # another service's workflow
            names.event_subject("resume/generation.requested"),
            f"$JS.API.CONSUMER.MSG.NEXT.{names.stream}.{work_consumer}",
            names.timer_subject("resume-generation", "x", "y"),
        ],
        SCHEDULER: [
            *forbidden_for_all,
            names.event_subject("resume/generation.requested"),
            names.run_subject("demo-greeting"),
            f"$KV.{names.state_bucket}.demo-greeting.x",
            f"$JS.API.DIRECT.GET.KV_{names.state_bucket}",
        ],
    }
    other_inbox = {GATEWAY: "_INBOX_demo.>", "demo": "_INBOX_gateway.>", SCHEDULER: "_INBOX.>"}
    denials = 0
    for user, subjects in forbidden.items():
        client = await connect_as(user)
        for subject in subjects:
            payload = update if subject.endswith(f"UPDATE.{names.stream}") else b"{}"
            await client.nc.publish(subject, payload, reply=client.nc.new_inbox())
            await client.denied(subject)
            denials += 1
        for subject in (">", "$KV.>", other_inbox[user], names.events_prefix + ">"):
            await client.nc.subscribe(subject)
            await client.denied(subject)
            denials += 1
    assert denials == sum(len(s) + 4 for s in forbidden.values())

    # Nothing changed: configurations, consumers, messages, the other bucket.
    after_hashes = await _stream_hashes(admin.nc)
    assert {name: after_hashes.get(name) for name in before} == before
    assert f"KV_{NS}_step_cache" in after_hashes  # the worker's bucket was not deleted
    assert await _consumers(admin.nc, names.stream) == consumers_before
    after = (await admin.nc.jetstream().stream_info(names.stream)).state.messages
    assert after == messages_before
    assert "evil" not in [s.config.name for s in await all_streams(admin.nc.jetstream())]


@pytest.mark.parametrize("how", ["anonymous", "wrong password", "unknown user"])
async def test_connections_without_valid_credentials_are_refused(auth_server, how):
    """Spoken at the wire (CONNECT, PING): the server answers an authorization violation
    and closes, where a known user with its password gets PONG."""
    credentials = {
        "anonymous": {},
        "wrong password": {"user": GATEWAY, "pass": "not-the-password"},
        "unknown user": {"user": "intruder", "pass": "whatever"},
    }[how]

    async def handshake(fields: dict[str, str]) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", auth_server.server.port)
        try:
            info = await asyncio.wait_for(reader.readline(), 10)
            assert info.startswith(b"INFO ")
            connect = {"verbose": False, "pedantic": False, "protocol": 1, **fields}
            writer.write(b"CONNECT " + json.dumps(connect).encode() + b"\r\nPING\r\n")
            await writer.drain()
            return await asyncio.wait_for(reader.readline(), 10)
        finally:
            writer.close()

    assert await handshake(credentials) == b"-ERR 'Authorization Violation'\r\n"
    good = {"user": GATEWAY, "pass": auth_server.passwords[GATEWAY]}
    assert await handshake(good) == b"PONG\r\n"
