"""Settings Structs, filled from the environment by `load_settings` (never at import time)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import msgspec

from shared.errors import ConfigError

S = TypeVar("S", bound=msgspec.Struct)


class EngineSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every service that talks to NATS needs."""

    nats_url: str = "nats://127.0.0.1:4222"
    # Prefix of every stream, subject, bucket and consumer name: one NATS account can hold
    # several isolated deployments (and every test its own).
    howlerhire_namespace: str = "hh"
    # Concurrent workflow runs in this process (all workflows together).
    worker_concurrency: int = 16
    # Seconds JetStream waits for an ack before redelivering; heartbeats keep long steps alive.
    ack_wait: float = 30.0
    max_deliver: int = 8
    # Seconds a SIGTERM waits for in-flight runs before handing them back.
    shutdown_grace: float = 25.0
    # Stream storage ceiling; past it publishes are refused (discard new), never old data dropped.
    stream_max_bytes: int = 1024**3
    # Replicas of every stream and bucket: 1 on one host; 3 on three separate hosts (HA).
    nats_replicas: int = 1
    # How long JetStream remembers message ids for de-duplication.
    dedup_window: float = 24 * 3600.0
    # The server's monitoring endpoint, for the durability self-check at start.
    nats_monitor_url: str = ""
    # "sync-always": refuse a server that does not fsync before acknowledging (single-host
    # profile); "any": accept JetStream's default 2-minute fsync (a deliberate choice).
    durability: str = "sync-always"
    # Shared rate limits, "name=amount/unit,…" (e.g. "resend=2/s,anthropic_tokens=400000/min").
    rate_limits: str = ""

    def __post_init__(self) -> None:
        from shared.workflow.ratelimit import parse_limits

        parse_limits(self.rate_limits)  # ConfigError naming RATE_LIMITS, at start


def load_settings(cls: type[S], environ: Mapping[str, str], required: tuple[str, ...] = ()) -> S:
    """Build `cls` from environment variables named after its fields (upper case).

    `required` names fields whose variable must be set and non-empty; a missing one raises
    ConfigError naming the variable. Values are never echoed back (they may be secrets).
    """
    for name in required:
        if not environ.get(name.upper(), "").strip():
            raise ConfigError(f"{name.upper()} is not set; it is required to start this service")
    fields = {f.name for f in msgspec.structs.fields(cls)}
    values = {key.lower(): value for key, value in environ.items() if key.lower() in fields}
    values = {key: value for key, value in values.items() if value != ""}
    try:
        return msgspec.convert(values, cls, strict=False)
    except msgspec.ValidationError as exc:
        # msgspec names the field as `$.field`; say which variable that is.
        message = str(exc)
        for name in fields:
            if f"$.{name}" in message:
                reason = message.split(" - ")[0]
                raise ConfigError(f"{name.upper()} has an invalid value: {reason}") from None
        raise ConfigError(f"invalid configuration: {message}") from None
