"""The parsing memo on the real nats-server: values round-trip, and every entry expires
(it holds public profile data erasure cannot find by user)."""

from __future__ import annotations

import msgspec

from services.parsing.memo import MEMO_TTL, KVMemo
from shared.bus import connect


class Skills(msgspec.Struct):
    skills: list[str]


async def test_the_memo_keeps_values_for_a_week_and_no_longer(nats_url: str, prefix: str) -> None:
    memo = KVMemo(nats_url, prefix)
    try:
        assert await memo.load("readme-skills", "readme text", Skills) is None
        await memo.save("readme-skills", "readme text", Skills(["Python", "Go"]))
        assert await memo.load("readme-skills", "readme text", Skills) == Skills(["Python", "Go"])
    finally:
        await memo.aclose()
    nc = await connect(nats_url, "test-memo", attempts=3)
    try:
        status = await nc.jetstream().key_value(f"{prefix}_parsing_memo")
        info = await status.status()
        assert info.ttl == MEMO_TTL == 7 * 24 * 3600
        # Keys are the kind and a digest: the memoised text appears in no key.
        keys = await status.keys()
        assert len(keys) == 1 and keys[0].startswith("readme-skills.")
        assert "text" not in keys[0] and len(keys[0].split(".")[1]) == 64
    finally:
        await nc.drain()
