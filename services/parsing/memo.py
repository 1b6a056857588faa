"""A small cross-run memo in a NATS KV bucket: GitHub answers with their ETags, README skills.

Keys are SHA-256 digests of what they stand for (URLs, README texts), so no user data or
secret is ever a key. Values are zlib-compressed msgpack. They hold public GitHub data of
a user (profile name, repositories, READMEs) under keys erasure cannot tie to the user,
so every entry expires after MEMO_TTL: that bounds how long an erased user's public
profile stays here. A memo is an optimisation: when
NATS cannot be reached or a value does not fit, it answers "not known" and logs, and the
caller simply does the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import zlib
from typing import Any, TypeVar

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from shared.bus import connect, ensure_bucket
from shared.sources.github import CachedResponse

__all__ = ["KVMemo", "MemoryMemo"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# A KV value travels as one message; stay well under the server's 1 MB default payload.
MAX_VALUE_BYTES = 512 * 1024


def digest(kind: str, key: str) -> str:
    return f"{kind}.{hashlib.sha256(key.encode()).hexdigest()}"


class _Codec:
    @staticmethod
    def encode(value: Any) -> bytes:
        return zlib.compress(msgspec.msgpack.encode(value), 6)

    @staticmethod
    def decode(data: bytes, type_: type[T]) -> T:
        return msgspec.msgpack.decode(zlib.decompress(data), type=type_)


MEMO_TTL = 7 * 24 * 3600.0  # a week: ETag revalidation keeps repeated syncs cheap within it


class KVMemo:
    """The memo on `<namespace>_parsing_memo`, connected on first use."""

    def __init__(self, nats_url: str, namespace: str, *, replicas: int = 1) -> None:
        self._url = nats_url
        self._bucket = f"{namespace}_parsing_memo"
        self._replicas = replicas
        self._nc: NATS | None = None
        self._kv: KeyValue | None = None
        self._lock = asyncio.Lock()

    async def _store(self) -> KeyValue | None:
        if self._kv is not None:
            return self._kv
        async with self._lock:
            if self._kv is None:
                try:
                    self._nc = await connect(self._url, "howlerhire-parsing-memo", attempts=3)
                    js = self._nc.jetstream()
                    self._kv = await ensure_bucket(
                        js, self._bucket, replicas=self._replicas, ttl=MEMO_TTL
                    )
                except (OSError, nats.errors.Error) as exc:
                    log.warning("parsing memo unavailable (%s); working without it", exc)
                    return None
        return self._kv

    async def aclose(self) -> None:
        if self._nc is not None:
            await self._nc.drain()

    async def load(self, kind: str, key: str, type_: type[T]) -> T | None:
        kv = await self._store()
        if kv is None:
            return None
        try:
            entry = await kv.get(digest(kind, key))
        except nats.js.errors.KeyNotFoundError:
            return None
        except (nats.errors.Error, OSError) as exc:
            log.warning("parsing memo read failed (%s)", exc)
            return None
        if not entry.value:
            return None
        try:
            return _Codec.decode(entry.value, type_)
        except (zlib.error, msgspec.DecodeError, msgspec.ValidationError):
            return None  # an older layout: just do the work again

    async def save(self, kind: str, key: str, value: Any) -> None:
        data = _Codec.encode(value)
        if len(data) > MAX_VALUE_BYTES:
            return
        kv = await self._store()
        if kv is None:
            return
        try:
            await kv.put(digest(kind, key), data)
        except (nats.errors.Error, OSError) as exc:
            log.warning("parsing memo write failed (%s)", exc)

    # ---- the GitHub client's ResponseCache ---------------------------------------------------

    async def get(self, key: str) -> CachedResponse | None:
        return await self.load("etag", key, CachedResponse)

    async def put(self, key: str, value: CachedResponse) -> None:
        await self.save("etag", key, value)


class MemoryMemo:
    """The same interface in process memory (unit tests, and a service without NATS KV)."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    async def aclose(self) -> None:
        return None

    async def load(self, kind: str, key: str, type_: type[T]) -> T | None:
        data = self._values.get(digest(kind, key))
        return None if data is None else _Codec.decode(data, type_)

    async def save(self, kind: str, key: str, value: Any) -> None:
        self._values[digest(kind, key)] = _Codec.encode(value)

    async def get(self, key: str) -> CachedResponse | None:
        return await self.load("etag", key, CachedResponse)

    async def put(self, key: str, value: CachedResponse) -> None:
        await self.save("etag", key, value)
