"""Bearer-token auth: only the exact token opens any route but /health and preflight."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from tests.unit.gateway.conftest import AUTH, TOKEN, make_app

EVENT = b'{"name":"resume/generation.requested","data":{"userId":"u1"}}'
BAD_HEADERS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": f"bearer {TOKEN}"},
    {"Authorization": f"BEARER {TOKEN}"},
    {"Authorization": f"Bearer  {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}{chr(ord(TOKEN[-1]) + 1)}"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Bearer {TOKEN} {TOKEN}"},
    {"Authorization": f"Bearer {TOKEN[:-1]}"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer " + "a" * 10_000},
    {"Authorization": "Bearer wrong-token"},
    {"X-Authorization": f"Bearer {TOKEN}"},
]


async def test_every_bad_token_is_refused(client, engine):
    """Missing, empty, wrong case, wrong byte, suffix, other schemes → 401, nothing sent."""
    for headers in BAD_HEADERS:
        for path in ("/events", "/trigger", "/status"):
            response = await client.post(path, content=EVENT, headers=headers)
            assert response.status_code == 401, (headers, path)
            assert response.json() == {
                "error": "missing or invalid bearer token",
                "field": "Authorization",
            }
            assert response.headers["www-authenticate"].startswith("Bearer")
    assert engine.calls == []


async def test_token_in_query_string_or_twice_is_refused(client, engine):
    """A token in the query string, or two Authorization headers, is not accepted."""
    response = await client.post(f"/events?token={TOKEN}", content=EVENT)
    assert response.status_code == 401
    response = await client.post(f"/events?access_token={TOKEN}", content=EVENT)
    assert response.status_code == 401
    response = await client.post(
        "/events",
        content=EVENT,
        headers=[("Authorization", f"Bearer {TOKEN}"), ("Authorization", f"Bearer {TOKEN}")],
    )
    assert response.status_code == 401
    assert engine.calls == []


async def test_every_route_but_health_requires_the_token(client):
    """Each documented route answers 401 without the token; /health answers 200."""
    routes = [
        ("GET", "/workflows"),
        ("GET", "/instances"),
        ("GET", "/openapi.json"),
        ("GET", "/workflows/job-discovery/instances"),
        ("POST", "/workflows/job-discovery/instances"),
        ("GET", "/workflows/job-discovery/instances/x"),
        ("PATCH", "/workflows/job-discovery/instances/x/status"),
        ("POST", "/workflows/job-discovery/instances/x/events/approved"),
        ("POST", "/e/some-key"),
        ("POST", "/events"),
        ("POST", "/trigger"),
        ("POST", "/status"),
    ]
    for method, path in routes:
        response = await client.request(method, path, content=b"{}")
        assert response.status_code == 401, (method, path)
    assert (await client.get("/health")).status_code == 200


async def test_valid_token_is_accepted(client, engine):
    """The exact token opens the door."""
    response = await client.post("/events", content=EVENT, headers=AUTH)
    assert response.status_code == 200
    assert engine.calls == ["send"]


async def test_event_keys_open_only_the_event_route(engine):
    """A configured event key in /e/{key} sends events without a header, nothing else."""
    app = make_app(engine, event_keys="key-one, key-two")
    async with AsyncTestClient(app) as client:
        assert (await client.post("/e/key-two", content=EVENT)).status_code == 200
        assert (await client.post("/e/key-three", content=EVENT)).status_code == 401
        assert (await client.post("/e/", content=EVENT)).status_code in (401, 404)
        assert (await client.post("/events", content=EVENT)).status_code == 401
        assert (await client.post("/trigger", content=b"{}")).status_code == 401
        # A header, when present, must be right even with a good key in the path.
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post("/e/key-one", content=EVENT, headers=wrong)).status_code == 401
        assert (await client.post("/e/anything", content=EVENT, headers=AUTH)).status_code == 200
    assert engine.calls == ["send", "send"]


async def test_without_event_keys_the_path_key_grants_nothing(client, engine):
    """With no event keys configured, /e/{key} needs the bearer token (even the token as key)."""
    assert (await client.post(f"/e/{TOKEN}", content=EVENT)).status_code == 401
    assert (await client.post("/e/whatever", content=EVENT, headers=AUTH)).status_code == 200
    assert engine.calls == ["send"]


async def test_cors_preflight_needs_no_token(engine):
    """A browser preflight from an allowed origin is answered without credentials."""
    app = make_app(engine, cors_origins="https://app.howlerhire.test")
    async with AsyncTestClient(app) as client:
        response = await client.options(
            "/trigger",
            headers={
                "Origin": "https://app.howlerhire.test",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert response.status_code in (200, 204)
        assert response.headers["access-control-allow-origin"] == "https://app.howlerhire.test"
        denied = await client.post(
            "/trigger", content=b"{}", headers={"Origin": "https://app.howlerhire.test"}
        )
        assert denied.status_code == 401
        other = await client.options(
            "/trigger",
            headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in other.headers
    assert engine.calls == []
