"""S1: bad bearer tokens against the real gateway process: every one 401, nothing published."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from tests.reliability.gateway_proc import TOKEN, running_gateway, stored_messages

BODY = b'{"name":"test/s1.probe","data":{"n":1}}'
RIGHT = TOKEN.encode()
LAST_CHANGED = RIGHT[:-1] + (b"0" if RIGHT[-1:] != b"0" else b"1")

#: Each variant: (path, Authorization header values) — None: no header at all.
VARIANTS: dict[str, tuple[str, list[bytes] | None]] = {
    "missing": ("/events", None),
    "empty": ("/events", [b""]),
    "scheme only": ("/events", [b"Bearer"]),
    "lowercase scheme": ("/events", [b"bearer " + RIGHT]),
    "uppercase scheme": ("/events", [b"BEARER " + RIGHT]),
    "basic scheme": ("/events", [b"Basic " + RIGHT]),
    "two spaces": ("/events", [b"Bearer  " + RIGHT]),
    "no space": ("/events", [b"Bearer" + RIGHT]),
    "last byte changed": ("/events", [b"Bearer " + LAST_CHANGED]),
    "prefix of the token": ("/events", [b"Bearer " + RIGHT[:-1]]),
    "token plus suffix": ("/events", [b"Bearer " + RIGHT + b"x"]),
    "non-ascii utf-8": ("/events", [b"Bearer " + RIGHT + "é".encode()]),
    "non-ascii latin-1": ("/events", [b"Bearer " + RIGHT[:-1] + b"\xe9"]),
    "two headers": ("/events", [b"Bearer wrong", b"Bearer " + RIGHT]),
    "10 KB token": ("/events", [b"Bearer " + RIGHT + b"a" * 10_240]),
    "token in query string": (f"/events?token={TOKEN}&access_token={TOKEN}", None),
    "token as event key": (f"/e/{TOKEN}", None),
}


async def _hammer(url: str, path: str, auth: list[bytes] | None, n: int) -> Counter[int]:
    statuses: Counter[int] = Counter()
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    headers += [(b"authorization", value) for value in auth or []]
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:

        async def one(count: int) -> None:
            for _ in range(count):
                response = await http.post(path, content=BODY, headers=headers)
                statuses[response.status_code] += 1
                if response.status_code == 401:
                    assert "bearer token" in response.text, response.text

        await asyncio.gather(*(one(n // 16 + (i < n % 16)) for i in range(16)))
    return statuses


async def _bad_tokens(nc: NATS, nats_url: str, prefix: str, tmp_path: Path, n: int) -> None:
    async with running_gateway(nats_url, prefix, tmp_path) as gateway:
        before = await stored_messages(nc, prefix)
        wrong: dict[str, Counter[int]] = {}
        for name, (path, auth) in VARIANTS.items():
            statuses = await _hammer(gateway.url, path, auth, n)
            allowed = {401, 413, 431} if name == "10 KB token" else {401}
            if set(statuses) - allowed or sum(statuses.values()) != n:
                wrong[name] = statuses
        after_bad = await stored_messages(nc, prefix)
        # The control: the right token is let through and its event is stored, so the
        # count above would have seen a publish.
        good = await _hammer(gateway.url, "/events", [b"Bearer " + RIGHT], 1)
        after_good = await stored_messages(nc, prefix)
        assert gateway.proc.alive(), gateway.proc.output()
    assert not wrong, f"of {n} requests per variant, not all refused: {dict(wrong)}"
    assert after_bad == before, f"{after_bad - before} messages stored by refused requests"
    assert good == Counter({200: 1}), good
    assert after_good > after_bad, "the valid request stored nothing: the count proves nothing"


async def test_bad_tokens_are_all_refused(
    nc: NATS, nats_url: str, prefix: str, tmp_path: Path
) -> None:
    """200 requests per variant (the stated 2,000 are the slow test below)."""
    await _bad_tokens(nc, nats_url, prefix, tmp_path, 200)


@pytest.mark.slow
async def test_bad_tokens_at_stated_size(
    nc: NATS, nats_url: str, prefix: str, tmp_path: Path
) -> None:
    """S1 at its stated size: 2,000 requests per bad-token variant."""
    await _bad_tokens(nc, nats_url, prefix, tmp_path, 2000)
