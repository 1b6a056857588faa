"""NATS plumbing: names, connecting (patiently), KV buckets, publishing with a message id.

The engine's streams and consumers are `shared.workflow.topology`."""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]+(?:[/.][A-Za-z0-9_-]+)*\Z")
# A publisher that writes an instance's `queued` record itself marks its start with this.
RECORD_HEADER = "Howlerhire-Record"
INSTANCE_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}\Z")

# Errors after which a publish may be retried with the same message id.
TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    asyncio.TimeoutError,
    ConnectionError,
)


def event_token(name: str) -> str:
    """`resume/generation.requested` → `resume.generation.requested` (a subject suffix)."""
    if not EVENT_NAME.match(name):
        raise ValueError(f"invalid event name {name!r}")
    return name.replace("/", ".")


@dataclass(frozen=True)
class Names:
    """Every stream, subject, bucket and consumer name of one deployment (namespace)."""

    namespace: str = "hh"

    @property
    def stream(self) -> str:
        return f"{self.namespace}_work"

    @property
    def timer_stream(self) -> str:
        return f"{self.namespace}_timers"

    @property
    def dlq_stream(self) -> str:
        return f"{self.namespace}_dlq"

    @property
    def state_bucket(self) -> str:
        return f"{self.namespace}_instances"

    @property
    def meta_bucket(self) -> str:
        return f"{self.namespace}_meta"

    def event_subject(self, name: str) -> str:
        return f"{self.namespace}.events.{event_token(name)}"

    @property
    def events_prefix(self) -> str:
        return f"{self.namespace}.events."

    def run_subject(self, workflow: str) -> str:
        return f"{self.namespace}.runs.{workflow}"

    def timer_subject(self, workflow: str, instance_id: str, key: str) -> str:
        return f"{self.namespace}.timers.{workflow}.{instance_id}.{key}"

    def wake_subject(self, workflow: str) -> str:
        return f"{self.namespace}.wake.{workflow}"

    def dlq_subject(self, workflow: str) -> str:
        return f"{self.namespace}.dlq.{workflow}"

    def consumer(self, workflow: str) -> str:
        return f"{self.namespace}_{workflow}"


def inbox_prefix(user: str | None) -> str:
    """The reply-inbox prefix of a NATS user: private per identity (`shared.natsauth`)."""
    return f"_INBOX_{user}" if user else "_INBOX"


def url_user(url: str) -> str | None:
    """The user named in a NATS URL (the first server's), if any."""
    match = re.match(r"^[a-z]+://([^:@/]+)(?::[^@/]*)?@", url.split(",")[0].strip())
    return match.group(1) if match else None


async def connect(url: str, name: str, *, attempts: int | None = None, **extra: Any) -> NATS:
    """Connect to NATS, retrying until it answers (a service may start before its broker).

    Failed tries are logged with the server's address (credentials stripped), the first
    and then every tenth, so an unreachable server is visible rather than a silent crash
    loop. Once connected the client reconnects forever. `attempts` bounds the initial
    tries (tests); None retries forever.
    """
    safe = _safe_url(url)
    failures = 0

    async def on_error(exc: Exception) -> None:
        nonlocal failures
        if isinstance(exc, OSError | nats.errors.NoServersError | asyncio.TimeoutError):
            failures += 1
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "NATS at %s is unreachable (%s, %d tries); still retrying",
                    safe,
                    type(exc).__name__,
                    failures,
                )
        else:
            log.warning("NATS error: %s: %s", type(exc).__name__, exc)

    async def on_disconnect() -> None:
        log.warning("NATS at %s disconnected; reconnecting", safe)

    async def on_reconnect() -> None:
        nonlocal failures
        failures = 0
        log.info("NATS at %s reconnected", safe)

    options: dict[str, Any] = {
        "name": name,
        "connect_timeout": 3,
        "allow_reconnect": True,
        "reconnect_time_wait": 1,
        "drain_timeout": 10,
        "error_cb": on_error,
        "disconnected_cb": on_disconnect,
        "reconnected_cb": on_reconnect,
        # -1: retry the first connection and later reconnections forever.
        "max_reconnect_attempts": -1 if attempts is None else attempts,
        # Replies come to the user's own inbox, the only one its permissions let it read.
        "inbox_prefix": inbox_prefix(url_user(url)),
        **extra,  # further nats.connect options (the gateway's pending_size=0)
    }
    # NATS_URL may list several servers of a cluster, comma-separated.
    servers = [part.strip() for part in url.split(",") if part.strip()]
    client = await nats.connect(servers if len(servers) > 1 else url, **options)
    log.info("connected to NATS at %s", safe)
    return client


def _safe_url(url: str) -> str:
    """A NATS URL without credentials, for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)


async def check_durability(monitor_url: str, required: str) -> None:
    """Refuse a server whose fsync policy contradicts the chosen durability profile.

    Reads `/varz` → `jetstream.config.sync_always`. Skipped (and said so) when no
    monitoring URL is configured.
    """
    from shared.errors import ConfigError

    if required not in ("sync-always", "any"):
        raise ConfigError(f"DURABILITY must be 'sync-always' or 'any', not {required!r}")
    if not monitor_url:
        log.info("durability self-check skipped: NATS_MONITOR_URL is not set")
        return
    import httpx

    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.get(f"{monitor_url.rstrip('/')}/varz")
            response.raise_for_status()
            config = response.json().get("jetstream", {}).get("config", {})
    except (httpx.HTTPError, ValueError) as exc:
        raise ConfigError(f"NATS_MONITOR_URL {monitor_url} did not answer /varz: {exc}") from exc
    sync_always = bool(config.get("sync_always"))
    if required == "sync-always" and not sync_always:
        raise ConfigError(
            "the NATS server does not fsync before acknowledging (jetstream sync_always is "
            "false): acknowledged events could be lost in a power cut. Set "
            "`jetstream { sync_interval: always }` on the server, or DURABILITY=any to accept it"
        )
    log.info("durability self-check: sync_always=%s (profile %s)", sync_always, required)


async def ensure_bucket(
    js: JetStreamContext, bucket: str, *, replicas: int = 1, ttl: float | None = None
) -> KeyValue:
    """A KV bucket with one revision per key (each expiring after `ttl` seconds if set)."""
    config = KeyValueConfig(
        bucket=bucket,
        history=1,
        ttl=ttl,
        storage=StorageType.FILE,
        replicas=replicas,
        # Direct gets are served by any replica; with one replica that is the leader, so
        # reads are fast and current. With R3 they could be stale: reads via the leader.
        direct=replicas == 1,
    )
    # Read first (see shared.workflow.topology): an existing bucket is used as it is.
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(config)
    except nats.js.errors.BadRequestError:
        return await js.key_value(bucket)


async def publish(
    js: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    msg_id: str | None,
    headers: dict[str, str] | None = None,
    retry_for: float = 5.0,
) -> Any:
    """Publish to JetStream, retrying transient failures with the same message id.

    The same `Nats-Msg-Id` on every try makes retries safe: JetStream stores one message.
    Raises the last error once `retry_for` seconds have passed.
    """
    hdrs = dict(headers or {})
    if msg_id is not None:
        hdrs["Nats-Msg-Id"] = msg_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + retry_for
    wait = 0.05
    while True:
        try:
            return await js.publish(subject, payload, headers=hdrs or None, timeout=2.0)
        except TRANSIENT:
            if loop.time() + wait >= deadline:
                raise
            await asyncio.sleep(wait * (0.5 + random.random()))
            wait = min(1.0, wait * 2)


def __getattr__(name: str) -> Any:
    # `ensure_topology` moved to shared.workflow.topology; code written against the old
    # place (branches in flight) keeps working until it imports the new one.
    if name == "ensure_topology":
        from shared.workflow.topology import ensure_topology

        return ensure_topology
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
