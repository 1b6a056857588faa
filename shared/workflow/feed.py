"""The change feed: every write of an instance record, in order, from the bucket's stream.

The instance bucket `<ns>_instances` is the JetStream stream `KV_<ns>_instances`; each
record write is one message on `$KV.<bucket>.<workflow>.<instance>`. An ordered consumer
on that stream (ephemeral, flow-controlled, recreated by the client from the last
sequence it saw when a message goes missing or the server restarts) yields the writes in
stream order, with their stream sequence: a reader that keeps the last sequence can
resume exactly after it (the dashboard's SSE `id:` / `Last-Event-ID`). The feed reads
what the engine itself writes; nothing publishes for it, so it cannot drift from the
records.

The bucket keeps one revision per key: a feed read live sees every write, while one
resumed from an older sequence sees, for each key written since, only its latest write
(the earlier ones were replaced) — the current state, which is what a view needs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.api import ConsumerConfig, DeliverPolicy

from shared.bus import Names
from shared.workflow.model import InstanceState, decode_state

# An idle ordered consumer hears a heartbeat this often (seconds), so a lost consumer is
# noticed and recreated by the client; also how often `changes` yields control when idle.
HEARTBEAT = 5.0
_DELETED = frozenset({"DEL", "PURGE"})


@dataclass(frozen=True)
class Change:
    """One write of one record: its stream sequence, KV key, and the record (None when
    the write was a delete or purge marker)."""

    seq: int
    key: str
    record: InstanceState | None

    @property
    def workflow(self) -> str:
        return self.key.partition(".")[0]

    @property
    def instance_id(self) -> str:
        return self.key.partition(".")[2]


def feed_subject(names: Names, workflow: str | None = None, instance_id: str | None = None) -> str:
    """The subject filter of a feed: the whole bucket, one workflow, or one instance."""
    base = f"$KV.{names.state_bucket}"
    if workflow is None:
        return f"{base}.>"
    if instance_id is None:
        return f"{base}.{workflow}.*"
    return f"{base}.{workflow}.{instance_id}"


async def last_sequence(nc: NATS, names: Names) -> int:
    """The bucket stream's last sequence now: a feed started after it misses nothing
    written after this call."""
    info = await nc.jetstream().stream_info(f"KV_{names.state_bucket}")
    return int(info.state.last_seq)


async def changes(
    nc: NATS,
    names: Names,
    *,
    after: int | None = None,
    workflow: str | None = None,
    instance_id: str | None = None,
    idle: float | None = None,
    decode: Callable[[bytes], Awaitable[InstanceState]] | None = None,
) -> AsyncGenerator[Change | None, None]:
    """Yield record writes in stream order, from the sequence after `after` (None: only
    writes from now on), filtered to one workflow or one instance.

    With `idle` set, yields None after each `idle` seconds without a write, so a caller
    (an SSE response) can send a keep-alive or notice its client left. A write that
    JetStream has since removed (its TTL ran out) is simply not seen.

    `decode` turns a stored record into the engine's view; pass the store's `decoded`
    so that records sealed for their user (shared/crypto.py) are opened, not shown as
    their header only.
    """
    js = nc.jetstream()
    if after is None:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW)
    else:
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, after + 1)
        )
    config.idle_heartbeat = HEARTBEAT
    sub = await js.subscribe(
        feed_subject(names, workflow, instance_id),
        stream=f"KV_{names.state_bucket}",
        ordered_consumer=True,
        config=config,
    )
    prefix_len = len(f"$KV.{names.state_bucket}.")
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle if idle is not None else HEARTBEAT)
            except (TimeoutError, nats.errors.TimeoutError):
                if idle is not None:
                    yield None
                continue
            meta = msg.metadata
            seq = int(meta.sequence.stream)
            if after is not None and seq <= after:
                continue  # a redelivery across an ordered-consumer reset
            after = seq
            headers = msg.headers or {}
            key = msg.subject[prefix_len:]
            if headers.get("KV-Operation") in _DELETED or not msg.data:
                yield Change(seq, key, None)
            else:
                state = await decode(msg.data) if decode is not None else decode_state(msg.data)
                yield Change(seq, key, state)
    finally:
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError):
            await sub.unsubscribe()
