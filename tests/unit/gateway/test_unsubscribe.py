"""/unsubscribe needs no bearer token but a token we signed; /schedules needs the bearer."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from litestar.testing import AsyncTestClient

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from shared.unsubscribe import UnsubscribeLinks, UnsubscribeSettings
from tests.unit.gateway.conftest import AUTH, TOKEN, FakeEngine

SECRET = "gateway-unit-test-secret-0123456789"
LINKS = UnsubscribeLinks(UnsubscribeSettings(unsubscribe_secret=SECRET))


def client_for(engine: FakeEngine, links: UnsubscribeLinks | None = LINKS) -> AsyncTestClient:  # type: ignore[type-arg]
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[FakeEngine]:
        yield engine

    app = create_app(GatewaySettings(workflows_auth_token=TOKEN), factory, links)
    return AsyncTestClient(app)


async def test_one_click_post_publishes_one_idempotent_event() -> None:
    """A valid token, no Authorization header: the unsubscribe event, same id each time."""
    engine = FakeEngine()
    user = uuid.uuid4()
    token = LINKS.token(user, "weekly_summary", datetime.now(UTC) + timedelta(days=3))
    async with client_for(engine) as client:
        for _ in range(2):
            response = await client.post(
                "/unsubscribe", params={"token": token}, content="List-Unsubscribe=One-Click"
            )
            assert response.status_code == 200, response.text
            assert response.json() == {"unsubscribed": True, "emailType": "weekly_summary"}
    first, second = engine.events
    assert first.name == "email/unsubscribe.requested"
    assert first.data == {"userId": str(user), "emailType": "weekly_summary"}
    assert first.id == second.id and first.id is not None and str(user) in first.id


async def test_get_confirms_without_changing_anything() -> None:
    """GET shows a page whose form POSTs; it publishes nothing."""
    engine = FakeEngine()
    token = LINKS.token(uuid.uuid4(), "weekly_summary", datetime.now(UTC) + timedelta(days=3))
    async with client_for(engine) as client:
        page = await client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and "weekly summary emails" in page.text
    assert engine.events == []


async def test_bad_tokens_and_missing_secret() -> None:
    """Forged, expired, missing tokens → 400 naming `token`, nothing published; no secret
    configured → 503 naming UNSUBSCRIBE_SECRET."""
    engine = FakeEngine()
    user = uuid.uuid4()
    forged = UnsubscribeLinks(
        UnsubscribeSettings(unsubscribe_secret="not-our-secret-0123456789")
    ).token(user, "weekly_summary", datetime.now(UTC) + timedelta(days=1))
    expired = LINKS.token(user, "weekly_summary", datetime.now(UTC) - timedelta(seconds=5))
    async with client_for(engine) as client:
        for params in ({"token": forged}, {"token": expired}, {}, {"token": "x.y"}):
            for method in ("GET", "POST"):
                response = await client.request(method, "/unsubscribe", params=params)
                assert response.status_code == 400, (method, params, response.text)
                assert response.json()["field"] == "token"
    assert engine.events == []
    async with client_for(engine, links=None) as client:
        response = await client.post("/unsubscribe", params={"token": expired})
    assert response.status_code == 503 and "UNSUBSCRIBE_SECRET" in response.json()["error"]


async def test_schedules_needs_the_bearer_token() -> None:
    """/schedules is an operator route: 401 without the token; 503 from an engine without
    a NATS connection (this fake)."""
    async with client_for(FakeEngine()) as client:
        assert (await client.get("/schedules")).status_code == 401
        assert (await client.get("/schedules", headers=AUTH)).status_code == 503
