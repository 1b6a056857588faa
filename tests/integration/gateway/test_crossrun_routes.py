"""The gateway's step-cache and rate-limit routes, and the client's methods for them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from nats.aio.client import Client as NATS

from shared.bus import connect
from shared.client import NotFoundError, RequestRejectedError, WorkflowsClient
from shared.workflow import CachePolicy, Spend
from shared.workflow.cache import Claim, StepCache
from shared.workflow.ratelimit import RateLimiter, parse_limits
from tests.integration.gateway.conftest import AUTH, TOKEN, gateway_app, serving


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await connect(nats_url, "test-client", attempts=3)
    yield client
    await client.drain()


async def fill(cache: StepCache, workflow: str, step: str, keys: list[str]) -> None:
    """Store one value per key, as a step run would."""
    for key in keys:
        policy = CachePolicy(key=key, ttl=timedelta(minutes=5))
        claim = await cache.acquire(workflow, step, policy, "test/fill")
        assert isinstance(claim, Claim)
        assert await claim.store({"key": key}, policy.ttl)
        await claim.close()


async def test_delete_cache_by_step_and_prefix(client, nats_url, settings, nc):
    """DELETE /cache/{wf}/{step}?prefix= removes the matching entries and says how many."""
    cache = await StepCache.open(nc, settings.howlerhire_namespace, lease=2.0)
    await fill(cache, "adder", "add", ["job-1", "job-2", "other"])
    await fill(cache, "adder", "second step", ["job-1"])
    response = await client.delete("/cache/adder/add", params={"prefix": "job-"}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"workflow": "adder", "removed": 2, "step": "add", "prefix": "job-"}
    assert [e.key for e in (await cache.entries("adder", "add")).values()] == ["other"]
    response = await client.delete("/cache/adder", headers=AUTH)
    assert response.json() == {"workflow": "adder", "removed": 2}
    assert await cache.entries("adder") == {}
    unknown = await client.delete("/cache/nope/add", headers=AUTH)
    assert unknown.status_code == 404 and unknown.json()["field"] == "workflow"
    long = await client.delete("/cache/adder/add", params={"prefix": "x" * 401}, headers=AUTH)
    assert long.status_code == 400 and long.json()["field"] == "prefix"
    assert (await client.delete("/cache/adder")).status_code == 401


async def test_rate_limits_route_and_client(nats_url, settings, nc):
    """GET /rate-limits shows a used limit's tokens and a 429's drain, through the client."""
    limiter = await RateLimiter.open(
        nc, settings.howlerhire_namespace, parse_limits("resend=2/s,github=4500/h")
    )
    assert (await limiter.take([Spend("github", 500.0)], 5.0)).taken
    await limiter.drain([Spend("resend")], 30.0)
    cache = await StepCache.open(nc, settings.howlerhire_namespace, lease=2.0)
    await fill(cache, "adder", "add", ["a", "b"])
    async with (
        serving(gateway_app(nats_url, settings)) as url,
        WorkflowsClient(url, TOKEN) as api,
    ):
        limits = {limit.name: limit for limit in (await api.rate_limits()).limits}
        assert set(limits) == {"github", "resend"}
        assert limits["github"].capacity == 4500
        assert 4000 <= limits["github"].tokens < 4010
        assert limits["github"].rate == "4500/3600s"
        assert limits["github"].blocked_until is None
        assert limits["resend"].blocked_until is not None
        assert limits["resend"].tokens <= 0
        gone = await api.invalidate_cache("adder", "add", prefix="a")
        assert (gone.removed, gone.step, gone.prefix) == (1, "add", "a")
        assert (await api.invalidate_cache("adder")).removed == 1
        with pytest.raises(NotFoundError):
            await api.invalidate_cache("no-such-workflow")
        with pytest.raises(RequestRejectedError):
            await api.invalidate_cache("adder", "add", prefix="y" * 401)
