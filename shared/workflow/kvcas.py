"""Compare-and-set on one KV key: the write every shared-state module of the engine uses.

A write is a publish to `$KV.<bucket>.<key>` with `Nats-Expected-Last-Subject-Sequence`
(the revision read; 0 for "no message yet"), sent as a request so the server's verdict
comes back: the new revision, or None when someone else wrote the key first (err_code
10071) and the caller should read again and re-apply its change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

__all__ = ["CasWriteError", "cas_change", "cas_put", "kv_read"]

T = TypeVar("T")
S = TypeVar("S")

WRONG_LAST_SEQUENCE = 10071
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


async def cas_put(
    nc: NATS, subject: str, data: bytes, last: int, headers: dict[str, str] | None = None
) -> int | None:
    """Write `data` if the subject's last revision is `last`; the new revision, or None."""
    reply = await nc.request(
        subject,
        data,
        timeout=WRITE_TIMEOUT,
        headers={**(headers or {}), "Nats-Expected-Last-Subject-Sequence": str(last)},
    )
    ack = _ack_decoder.decode(reply.data)
    if ack.error is not None:
        if ack.error.err_code == WRONG_LAST_SEQUENCE:
            return None
        raise CasWriteError(
            f"KV write refused: {ack.error.description} (code {ack.error.err_code})"
        )
    return ack.seq


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
