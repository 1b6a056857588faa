"""Envelope encryption of personal data: a data key per user, wrapped by a master key.

Append-only streams cannot be edited, so what this system keeps of a user's personal data
(instance records, run and event messages, and every copy of those: dead letters, the
instance bucket's history) is sealed with that user's data key (AES-256-GCM, from
`cryptography`). The data keys live in a KV bucket of their own, `<ns>_keys`, one per
user, each wrapped (AES-256-GCM again) by a master key from DATA_MASTER_KEYS. Deleting
a user's data key (`UserKeys.erase`) makes every sealed copy unreadable: crypto-shredding.

DATA_MASTER_KEYS is `kid:key,kid:key` (keys: 32 random bytes, base64url): the first wraps
new data keys, every one unwraps, and each wrapped key names its master's kid, so a
master key is rotated by putting a new one first, running `UserKeys.rewrap` (every data
key wrapped by the new one), then dropping the old one.

A sealed value is `{"userId": <id>, "$sealed": "<data key id>.<nonce>.<ciphertext>"}`:
the user id stays readable (it routes, indexes and erases; it is an opaque id, not
personal data), everything else is ciphertext. The data key's id and the user id are
the AEAD's associated data, so a ciphertext moved to another user or key fails to open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
import nats.js.errors
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from shared.bus import Names, ensure_bucket
from shared.errors import ConfigError

log = logging.getLogger(__name__)

MASTER_VARIABLE = "DATA_MASTER_KEYS"
SEALED = "$sealed"
USER_FIELD = "userId"
# How long a process trusts a data key it has read (and the absence of one). An erasure
# also tells every process at once (a watch on the bucket); this bounds a missed notice.
CACHE_SECONDS = 30.0
KEY_ID_BYTES = 8  # a data key's id: base64url of 6 random bytes


class ErasedError(Exception):
    """The data key of a sealed value is gone: the user's data was erased."""

    @staticmethod
    def info() -> Any:
        """How an erased record's error reads (an `ErrorInfo`)."""
        from shared.workflow.model import ErrorInfo

        return ErrorInfo(name="ErasedError", message="this user's data was erased")


def keys_bucket(names: Names) -> str:
    return f"{names.namespace}_keys"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def user_key_name(user_id: str) -> str:
    """The bucket key of a user's data key: a digest (ids may hold any character)."""
    from shared.workflow.store import user_token

    return user_token(user_id)


def parse_master_keys(raw: str) -> list[tuple[str, AESGCM]]:
    """`kid:base64url-key,…` → (kid, cipher) pairs, the first wrapping. ConfigError names
    DATA_MASTER_KEYS and the problem, never a key."""
    keys: list[tuple[str, AESGCM]] = []
    for n, item in enumerate(part.strip() for part in raw.split(",")):
        if not item:
            continue
        kid, sep, encoded = item.partition(":")
        if not sep or not kid.isalnum():
            raise ConfigError(
                f"{MASTER_VARIABLE}: entry {n + 1} must be `kid:key` with an alphanumeric kid"
            )
        try:
            key = _unb64(encoded)
        except (binascii.Error, ValueError):
            raise ConfigError(f"{MASTER_VARIABLE}: key {kid!r} is not base64url") from None
        if len(key) != 32:
            raise ConfigError(
                f"{MASTER_VARIABLE}: key {kid!r} must be 32 bytes (base64url of 32 random bytes; "
                "`python -c 'import os,base64;print(base64.urlsafe_b64encode(os.urandom(32)))'`)"
            )
        if any(kid == known for known, _ in keys):
            raise ConfigError(f"{MASTER_VARIABLE}: key id {kid!r} is listed twice")
        keys.append((kid, AESGCM(key)))
    return keys


def new_master_key() -> str:
    """A fresh master key, base64url (for `kid:<this>` in DATA_MASTER_KEYS)."""
    return _b64(os.urandom(32))


class WrappedKey(msgspec.Struct, frozen=True):
    """A data key as stored: its id, the master key's id, the nonce and the wrapped key."""

    id: str
    m: str
    n: str
    w: str


_wrapped_decoder = msgspec.json.Decoder(WrappedKey)


@dataclass(frozen=True, slots=True)
class DataKey:
    id: str
    cipher: AESGCM


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and SEALED in value


class UserKeys:
    """The per-user data keys of one namespace: create, read (cached), seal, open, erase."""

    def __init__(self, kv: KeyValue, masters: list[tuple[str, AESGCM]]) -> None:
        if not masters:
            raise ConfigError(f"{MASTER_VARIABLE} holds no key")
        self.kv = kv
        self.masters = masters
        self._by_kid = dict(masters)
        self._cache: dict[str, tuple[DataKey | None, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._watcher: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, nc: NATS, names: Names, masters: list[tuple[str, AESGCM]], *, replicas: int = 1
    ) -> UserKeys:
        kv = await ensure_bucket(nc.jetstream(), keys_bucket(names), replicas=replicas)
        keys = cls(kv, masters)
        keys.watch()
        return keys

    def watch(self) -> None:
        """Forget a data key the moment it is deleted anywhere (an erasure)."""
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="user-keys-watch")

    async def _watch(self) -> None:
        while True:
            try:
                watcher = await self.kv.watch(">", include_history=False, ignore_deletes=False)
                async for entry in watcher:
                    if entry is None:
                        continue
                    # Deleted (an erasure) or made anew: read it again when next needed.
                    self._cache.pop(entry.key, None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the cache's expiry still applies
                log.warning("user key watch lost (%s); retrying", type(exc).__name__)
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.gather(self._watcher, return_exceptions=True)
            self._watcher = None

    # -- data keys -----------------------------------------------------------------------

    def _unwrap(self, name: str, wrapped: WrappedKey) -> DataKey:
        master = self._by_kid.get(wrapped.m)
        if master is None:
            raise ConfigError(
                f"a data key is wrapped by master key {wrapped.m!r}, which {MASTER_VARIABLE} "
                "does not hold (keep it until `rewrap` has run)"
            )
        raw = master.decrypt(_unb64(wrapped.n), _unb64(wrapped.w), f"{name}.{wrapped.id}".encode())
        return DataKey(wrapped.id, AESGCM(raw))

    async def _read(self, name: str) -> DataKey | None:
        try:
            entry = await self.kv.get(name)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if not entry.value:
            return None
        return self._unwrap(name, _wrapped_decoder.decode(entry.value))

    async def key_for(self, user_id: str, *, create: bool, fresh: bool = False) -> DataKey | None:
        """The user's data key (made with `create` when there is none; read from the
        bucket, not the cache, with `fresh`)."""
        name = user_key_name(user_id)
        cached = self._cache.get(name)
        now = time.monotonic()
        if (
            not fresh
            and cached is not None
            and now - cached[1] < CACHE_SECONDS
            and (cached[0] or not create)
        ):
            return cached[0]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            key = await self._read(name)
            if key is None and create:
                key = await self._create(name)
            self._cache[name] = (key, time.monotonic())
            self._locks.pop(name, None)
            return key

    async def _create(self, name: str) -> DataKey:
        raw = AESGCM.generate_key(bit_length=256)
        key_id = _b64(os.urandom(6))
        kid, master = self.masters[0]
        nonce = os.urandom(12)
        wrapped = WrappedKey(
            id=key_id,
            m=kid,
            n=_b64(nonce),
            w=_b64(master.encrypt(nonce, raw, f"{name}.{key_id}".encode())),
        )
        try:
            await self.kv.create(name, msgspec.json.encode(wrapped))
        except nats.js.errors.KeyWrongLastSequenceError:
            found = await self._read(name)  # another process made it first: theirs
            if found is None:
                raise
            return found
        return DataKey(key_id, AESGCM(raw))

    async def erase(self, user_id: str) -> bool:
        """Delete the user's data key and every revision of it; False if there was none."""
        name = user_key_name(user_id)
        existed = await self._read(name) is not None
        await self.kv.purge(name)
        self._cache.pop(name, None)
        return existed

    async def rewrap(self) -> int:
        """Wrap every data key with the first master key; returns how many changed."""
        kid, master = self.masters[0]
        changed = 0
        try:
            names = await self.kv.keys()
        except nats.js.errors.NoKeysError:
            return 0
        for name in names:
            entry = await self.kv.get(name)
            if not entry.value:
                continue
            wrapped = _wrapped_decoder.decode(entry.value)
            if wrapped.m == kid:
                continue
            key_id = wrapped.id
            raw = self._raw(name, wrapped)
            nonce = os.urandom(12)
            rewrapped = WrappedKey(
                id=key_id,
                m=kid,
                n=_b64(nonce),
                w=_b64(master.encrypt(nonce, raw, f"{name}.{key_id}".encode())),
            )
            await self.kv.update(name, msgspec.json.encode(rewrapped), last=entry.revision)
            changed += 1
        return changed

    def _raw(self, name: str, wrapped: WrappedKey) -> bytes:
        return self._by_kid[wrapped.m].decrypt(
            _unb64(wrapped.n), _unb64(wrapped.w), f"{name}.{wrapped.id}".encode()
        )

    # -- values --------------------------------------------------------------------------

    async def seal_raw(self, user_id: str, plain: bytes) -> bytes:
        """`plain` sealed for the user: data key id (8 bytes), nonce (12), ciphertext."""
        key = await self.key_for(user_id, create=True)
        assert key is not None
        nonce = os.urandom(12)
        head = key.id.encode()
        return head + nonce + key.cipher.encrypt(nonce, plain, user_id.encode() + b"." + head)

    async def open_raw(self, user_id: str, raw: bytes) -> bytes:
        """The plaintext of `seal_raw`; ErasedError when the user's key is gone."""
        head, nonce, sealed = raw[:KEY_ID_BYTES], raw[KEY_ID_BYTES : KEY_ID_BYTES + 12], raw[20:]
        key = await self.key_for(user_id, create=False)
        if key is None or key.id.encode() != head:
            # The cache may be behind the bucket (a key made anew elsewhere a moment ago,
            # before the watch says so): ask the bucket before calling the value erased.
            key = await self.key_for(user_id, create=False, fresh=True)
        if key is None or key.id.encode() != head:
            raise ErasedError("the data key of this value is gone (erased)")
        try:
            return key.cipher.decrypt(nonce, sealed, user_id.encode() + b"." + head)
        except (InvalidTag, ValueError):
            raise ErasedError("sealed value does not open with the user's key") from None

    async def seal_bytes(self, user_id: str, plain: bytes) -> str:
        """`seal_raw` as text (base64url), for a JSON value."""
        return _b64(await self.seal_raw(user_id, plain))

    async def open_bytes(self, user_id: str, token: str) -> bytes:
        try:
            raw = _unb64(token)
        except (binascii.Error, ValueError):
            raise ErasedError("malformed sealed value") from None
        return await self.open_raw(user_id, raw)

    async def seal(self, user_id: str, value: Any) -> dict[str, str]:
        """`value` (JSON) sealed for the user: `{"userId": id, "$sealed": "…"}`."""
        token = await self.seal_bytes(user_id, msgspec.json.encode(value))
        return {USER_FIELD: user_id, SEALED: token}

    async def open(self, value: Any) -> Any:
        """A sealed value's original, or `value` itself when it is not sealed."""
        if not is_sealed(value):
            return value
        user = value.get(USER_FIELD)
        if not isinstance(user, str):
            raise ErasedError("sealed value without a user")
        return msgspec.json.decode(await self.open_bytes(user, value[SEALED]))


def master_keys_from(environ: Mapping[str, str]) -> list[tuple[str, AESGCM]]:
    return parse_master_keys(environ.get(MASTER_VARIABLE, ""))
