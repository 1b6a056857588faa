"""Compare-and-set on one KV key: the write every shared-state module of the engine uses.

A write is a publish to `$KV.<bucket>.<key>` with `Nats-Expected-Last-Subject-Sequence`
(the revision read; 0 for "no message yet"), sent as a request so the server's verdict
comes back: the new revision, or None when someone else wrote the key first (err_code
10071) and the caller should read again and re-apply its change. The instance store, the
step cache and the rate limits all write through `kv_publish`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

__all__ = ["BucketFullError", "CasWriteError", "cas_change", "cas_put", "kv_publish", "kv_read"]

T = TypeVar("T")
S = TypeVar("S")

WRONG_LAST_SEQUENCE = 10071
# "The store failed", the reason in the description: "maximum bytes exceeded" is a full
# bucket (the old revision still counts until the new one is stored).
STORE_FAILED = 10077
# A clustered (R3) stream's leader answers this, without a sequence, when it cannot check
# the expected last sequence because earlier proposals are still in flight: not a lost
# race, a "try again" (seen with 100 concurrent creates of distinct keys).
LAST_SEQUENCE_UNCHECKED = 10164
UNCHECKED_RETRIES = 50
WRITE_TIMEOUT = 5.0


class _ApiError(msgspec.Struct):
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    seq: int = 0
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


class CasWriteError(nats.errors.Error):
    """JetStream refused a write for a reason other than a lost race."""


class BucketFullError(CasWriteError):
    """The bucket's max_bytes (or max_msgs) would be exceeded by the write."""


async def kv_publish(nc: NATS, subject: str, data: bytes, headers: dict[str, str]) -> int | None:
    """Publish a KV write whose headers carry its expectation (`Nats-Expected-Last-Subject-
    Sequence`); the new revision, None on a lost race, CasWriteError on any other refusal.
    A leader's "cannot check yet" (10164) is retried, briefly."""
    reply = await nc.request(subject, data, timeout=WRITE_TIMEOUT, headers=headers)
    ack = _ack_decoder.decode(reply.data)
    for attempt in range(UNCHECKED_RETRIES):
        if ack.error is None or ack.error.err_code != LAST_SEQUENCE_UNCHECKED:
            break
        await asyncio.sleep(min(0.2, 0.005 * (attempt + 1)))
        reply = await nc.request(subject, data, timeout=WRITE_TIMEOUT, headers=headers)
        ack = _ack_decoder.decode(reply.data)
    if ack.error is not None:
        if ack.error.err_code == WRONG_LAST_SEQUENCE:
            return None
        if ack.error.err_code == STORE_FAILED and "maximum" in ack.error.description:
            raise BucketFullError(f"{ack.error.description} (code {ack.error.err_code})")
        raise CasWriteError(f"{ack.error.description} (code {ack.error.err_code})")
    return ack.seq


async def cas_put(
    nc: NATS, subject: str, data: bytes, last: int, headers: dict[str, str] | None = None
) -> int | None:
    """Write `data` if the subject's last revision is `last`; the new revision, or None."""
    expect = {**(headers or {}), "Nats-Expected-Last-Subject-Sequence": str(last)}
    return await kv_publish(nc, subject, data, expect)


async def kv_read(kv: KeyValue, key: str) -> tuple[bytes | None, int]:
    """The key's value (None when absent or deleted) and its last revision (0: never)."""
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError as exc:
        return None, int(exc.entry.revision or 0) if exc.entry is not None else 0
    return (entry.value or None), int(entry.revision or 0)


async def cas_change(
    nc: NATS,
    kv: KeyValue,
    key: str,
    decode: Callable[[bytes | None], S],
    change: Callable[[S], tuple[bytes | None, T]],
    headers: dict[str, str] | None = None,
) -> T:
    """Read the key, apply `change(value) -> (new bytes or None for no write, result)`,
    write it by compare-and-set; on a lost race read again and re-apply."""
    subject = f"$KV.{kv._name}.{key}"
    while True:
        raw, revision = await kv_read(kv, key)
        data, result = change(decode(raw))
        if data is None or await cas_put(nc, subject, data, revision, headers) is not None:
            return result
