"""Per-user data keys on the real nats-server: sealing, tampering, erasure seen by every
process, and master-key rotation."""

from __future__ import annotations

import asyncio
import base64

import pytest

from shared.bus import Names, connect
from shared.crypto import ErasedError, UserKeys, keys_bucket, parse_master_keys, user_key_name
from shared.errors import ConfigError


def _master(kid: str, fill: bytes) -> str:
    return f"{kid}:" + base64.urlsafe_b64encode(fill * 32).decode().rstrip("=")


M1, M2 = _master("m1", b"a"), _master("m2", b"b")


async def test_sealed_values_open_only_for_their_user_and_die_with_the_key(
    nats_url: str, prefix: str
) -> None:
    nc = await connect(nats_url, "test-a", attempts=3)
    other = await connect(nats_url, "test-b", attempts=3)
    names = Names(prefix)
    a = await UserKeys.connect(nc, names, parse_master_keys(M1))
    b = await UserKeys.connect(other, names, parse_master_keys(M1))
    try:
        value = {"email": "ada@example.org", "resume": "Analytical Engine notes"}
        sealed = await a.seal("user-1", value)
        assert sealed["userId"] == "user-1" and "ada@" not in str(sealed)
        assert await b.open(sealed) == value  # another process, the same key
        assert await a.open({"plain": 1}) == {"plain": 1}

        moved = {**sealed, "userId": "user-2"}
        await a.seal("user-2", "makes user-2 a key")
        with pytest.raises(ErasedError):
            await a.open(moved)  # the AAD names the user: no moving ciphertext across
        token = sealed["$sealed"]
        flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
        with pytest.raises(ErasedError):
            await a.open({**sealed, "$sealed": flipped})

        # The wrapped key in the bucket holds no key material in the clear.
        raw = (await a.kv.get(user_key_name("user-1"))).value or b""
        assert b"ada@" not in raw

        assert await b.erase("user-1") is True
        assert await b.erase("user-1") is False  # idempotent
        with pytest.raises(ErasedError):
            await b.open(sealed)
        # The other process hears of it (a watch on the bucket), well within its cache time.
        for _ in range(200):
            try:
                await a.open(sealed)
            except ErasedError:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the erased key was still used by the other process")
        # A user who comes back gets a new key; the old values stay unreadable.
        fresh = await a.seal("user-1", "again")
        assert await b.open(fresh) == "again"
        with pytest.raises(ErasedError):
            await a.open(sealed)
    finally:
        await a.close()
        await b.close()
        await nc.drain()
        await other.drain()


async def test_master_keys_rotate_by_rewrapping(nats_url: str, prefix: str) -> None:
    nc = await connect(nats_url, "test-rotate", attempts=3)
    names = Names(prefix)
    old = await UserKeys.connect(nc, names, parse_master_keys(M1))
    both = await UserKeys.connect(nc, names, parse_master_keys(f"{M2},{M1}"))
    new = await UserKeys.connect(nc, names, parse_master_keys(M2))
    try:
        sealed = [await old.seal(f"user-{n}", {"n": n}) for n in range(3)]
        with pytest.raises(ConfigError, match="m1"):
            await new.open(sealed[0])  # wrapped by a master key it does not hold
        assert await both.rewrap() == 3
        assert await both.rewrap() == 0
        new._cache.clear()
        assert [await new.open(s) for s in sealed] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert keys_bucket(names) == f"{prefix}_keys"
    finally:
        for keys in (old, both, new):
            await keys.close()
        await nc.drain()


def test_master_keys_are_checked_naming_the_variable() -> None:
    for raw in ("nokid", "m1:short", "m-1:" + M1.split(":")[1], f"{M1},{M1}"):
        with pytest.raises(ConfigError, match="DATA_MASTER_KEYS"):
            parse_master_keys(raw)
    assert parse_master_keys("") == []
    assert [kid for kid, _ in parse_master_keys(f"{M2}, {M1}")] == ["m2", "m1"]
