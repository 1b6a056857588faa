"""Property-based fuzz of request bodies: never a 5xx, never a leaked internal."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from tests.unit.gateway.conftest import AUTH, FakeEngine, make_app

ENGINE = FakeEngine()
APP = make_app(ENGINE, max_body_bytes=64 * 1024)
PATHS = [
    "/trigger",
    "/status",
    "/events",
    "/e/key",
    "/workflows/job-discovery/instances",
    "/workflows/job-discovery/instances/i1/events/approved",
]
LEAKS = re.compile(
    r"Traceback|site-packages|\.py\"|File \"|Error:|Exception|msgspec\.|"
    r"nats\.|litestar\.|0x[0-9a-f]{6,}"
)
FIELDS = ["workflow", "params", "instanceId", "name", "data", "id", "ts", "v", "user", "status"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
shaped = st.fixed_dictionaries(
    {},
    optional={
        "workflow": st.sampled_from(["job-discovery", "resume-generation", "nope", ""])
        | json_values,
        "params": json_values,
        "instanceId": st.from_regex(r"[A-Za-z0-9_-]{0,12}", fullmatch=True) | json_values,
        "name": st.sampled_from(
            ["resume/generation.requested", "jobs/discovery.requested", "a b", "inngest/x", "ok"]
        )
        | json_values,
        "data": json_values,
        "id": json_values,
        "ts": json_values,
    },
)
bodies = st.one_of(
    shaped.map(lambda d: json.dumps(d).encode()),
    st.lists(shaped, max_size=3).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(min_value=1, max_value=3000).map(
        lambda n: b'{"params":' + b"[" * n + b"]" * n + b',"workflow":"job-discovery"}'
    ),
    st.integers(min_value=20, max_value=5000).map(
        lambda n: b'{"name":"ok","ts":' + b"9" * n + b"}"
    ),
)


@settings(
    max_examples=2000, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(path=st.sampled_from(PATHS), body=bodies)
async def test_fuzzed_bodies_never_5xx_nor_leak(path, body):
    """Any body on any route → 2xx or 4xx JSON, with no trace of the implementation."""
    async with AsyncTestClient(APP) as client:
        response = await client.post(path, content=body, headers=AUTH)
        assert response.status_code < 500, (path, body[:80], response.text)
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()
        if response.status_code >= 400:
            assert set(answer) <= {"error", "field"}, answer
            assert not LEAKS.search(response.text), response.text
        assert (await client.get("/health")).status_code == 200
