"""S3: malformed bodies against the real gateway process: each 400 or 422, nothing internal said."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path

import httpx
import pytest
from nats.aio.client import Client as NATS

from tests.reliability.gateway_proc import TOKEN, running_gateway, stored_messages

PATHS = ("/events", "/e/somekey", "/trigger", "/status", "/workflows/profile-sync/instances")
# As many digits as fit under the 256 KB body limit (a 10⁶-digit body is S2's 413).
DIGITS = 200_000
UUID = "8f9c2a34-5b6d-4e7f-8a9b-0c1d2e3f4a5b"

#: What no answer may contain: tracebacks, source paths, bare exception class names.
LEAKS = re.compile(
    r"Traceback|/site-packages/|\.py\"|File \"|\bmsgspec\b|\blitestar\b|\basyncpg\b|"
    r"\b(Key|Value|Type|Attribute|Index|Runtime|Recursion|Overflow|Memory|Lookup|"
    r"Assertion|Name|UnicodeDecode|JSONDecode|Validation|Decode|NotFound)Error\b|"
    r"\bException\b|\bnats\.errors\b"
)

VALID = (
    b'{"name":"test/s3.probe","data":{"userId":"' + UUID.encode() + b'"},"id":"x1"}',
    b'{"workflow":"profile-sync","params":{"userId":"'
    + UUID.encode()
    + b'","githubHandle":"octo"}}',
)

FIXED: list[bytes] = [
    b"",
    b"   ",
    b"null",
    b"true",
    b"42",
    b'"a string"',
    b"{",
    b"}",
    b"{}",
    b"[{}]",
    b"{'name': 'single'}",
    b'{"name":"a",}',
    b'{"name":"a"} trailing',
    b'{"name":NaN}',
    b'{"name":"a" /* comment */}',
    b'{"name": 12}',
    b'{"name": null}',
    b'{"name": ["list"]}',
    b'{"name": {"obj": 1}}',
    b'{"name": ""}',
    b'{"name": "has spaces in it"}',
    b'{"name": "' + b"n" * 10_000 + b'"}',
    b'{"name":"ok/x","data":"not an object"}',
    b'{"name":"ok/x","data":[1,2]}',
    b'{"name":"ok/x","data":7}',
    b'{"name":"ok/x","id":12}',
    b'{"name":"ok/x","ts":-1}',
    b'{"name":"ok/x","ts":"yesterday"}',
    b'{"name":"ok/x","ts":1e999}',
    b'{"name":"ok/x","ts":' + b"9" * DIGITS + b"}",
    b'{"name":"ok/x","data":{"n":' + b"9" * DIGITS + b"}}",
    b'{"name":"ok/x","data":' + b'{"a":' * 10_000 + b"1" + b"}" * 10_000 + b"}",
    b'{"name":"ok/x","data":{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}}",
    b'{"name":"ok/x\x00","data":{}}',
    b'{"name":"ok/x\\u0000"}',
    b'{"name":"\xff\xfe\xfd"}',
    b'{"name":"ok/x","data":{"k":"\xc3\x28"}}',
    b'{"name":"ok/x","data":{"k":"\xed\xa0\x80"}}',
    b'{"name":"ok/x","unknown\x80field":{}}',  # a field no type declares: skipped unread
    b'{"workflow":"profile-sync","params":{},"x":"\xff"}',
    b"\xef\xbb\xbf\x00\x00",
    b"name=ok%2Fx&data=1",
    b"<xml><name>ok/x</name></xml>",
    b'{"workflow": 5, "params": {}}',
    b'{"workflow": "profile-sync", "params": []}',
    b'{"workflow": "profile-sync", "params": {"userId": 5, "githubHandle": "octo"}}',
    b'{"workflow": "profile-sync", "params": {"userId": "'
    + UUID.encode()
    + b'", "githubHandle": ["x"]}}',
    b'{"workflow": "profile-sync", "params": {"userId": "not-a-uuid", "githubHandle": "octo"}}',
    b'{"workflow": "profile-sync", "params": {"githubHandle": "octo"}}',
    b'{"workflow": "profile-sync", "params": {}}',
    b'{"workflow": "profile-sync", "instanceId": 12}',
    b'{"workflow": "no-such-workflow", "params": {}}',
    b'{"params": {}}',
    b'{"instanceId": "a"}',
    b'{"workflow": "profile-sync", "instanceId": "' + b"i" * 5000 + b'"}',
]

STRING_FIELD = re.compile(rb'"(githubHandle|name)":"[^"]*"')

CONTENT_TYPES = (
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "application/json; charset=latin-1",
)


def corpus(n: int, seed: int = 17) -> list[tuple[str, str, bytes]]:
    """`n` (path, content-type, body): the fixed cases on every path, then seeded mutations
    of valid bodies (truncated, a byte flipped to an invalid one, a value's type swapped)."""
    rng = random.Random(seed)
    cases = [(path, "application/json", body) for body in FIXED for path in PATHS]
    swaps = (b"1", b"[]", b"true", b"null", b"{}", b"-0.5e400")
    while len(cases) < n:
        body = rng.choice(VALID)
        kind = rng.randrange(3)
        if kind == 0:
            body = body[: rng.randrange(1, len(body) - 1)]
        elif kind == 1:
            at = rng.randrange(len(body))
            body = body[:at] + bytes([rng.choice((0x00, 0x80, 0xC0, 0xFF))]) + body[at:]
        else:
            # a required string field's value becomes one of another type
            swap = rng.choice(swaps)
            body, count = STRING_FIELD.subn(rb'"\1":' + swap, body, count=1)
            assert count == 1
        cases.append((rng.choice(PATHS), rng.choice(CONTENT_TYPES), body))
    return cases[:n]


async def _bad_bodies(nc: NATS, nats_url: str, prefix: str, tmp_path: Path, n: int) -> None:
    cases = corpus(n)
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    leaked: list[str] = []
    async with running_gateway(nats_url, prefix, tmp_path) as gateway:
        before = await stored_messages(nc, prefix)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=gateway.url, timeout=60, headers=headers) as http:
            queue = list(cases)

            async def client() -> None:
                while queue:
                    path, content_type, body = queue.pop()
                    response = await http.post(
                        path, content=body, headers={"content-type": content_type}
                    )
                    statuses[response.status_code] += 1
                    answer = f"{response.status_code} {response.text[:200]}"
                    case = f"{path} {content_type} {body[:80]!r} → {answer}"
                    if response.status_code not in (400, 422):
                        wrong.append(case)
                    elif not response.json().get("error"):
                        wrong.append(f"no error message: {case}")
                    if LEAKS.search(response.text):
                        leaked.append(case)

            await asyncio.gather(*(client() for _ in range(8)))
            health = await http.get("/health")
        after = await stored_messages(nc, prefix)
        assert gateway.proc.alive(), gateway.proc.output()
    assert health.status_code == 200, health.text
    assert not wrong, f"{len(wrong)} of {len(cases)} not 400/422 ({dict(statuses)}):\n" + "\n".join(
        wrong[:20]
    )
    assert not leaked, f"{len(leaked)} of {len(cases)} answers leak internals:\n" + "\n".join(
        leaked[:20]
    )
    assert after == before, f"{after - before} messages stored from bad bodies"
    assert sum(statuses.values()) == len(cases)


async def test_bad_bodies_are_refused_cleanly(
    nc: NATS, nats_url: str, prefix: str, tmp_path: Path
) -> None:
    """The fixed cases on every path plus mutations: 500 bodies (2,000 in the slow test)."""
    await _bad_bodies(nc, nats_url, prefix, tmp_path, 500)


@pytest.mark.slow
async def test_bad_bodies_at_stated_size(
    nc: NATS, nats_url: str, prefix: str, tmp_path: Path
) -> None:
    """S3 at its stated size: 2,000 bad bodies."""
    await _bad_bodies(nc, nats_url, prefix, tmp_path, 2000)
