"""Fixtures for the LLM-step tests: a client connection per test."""

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client as NATS

from shared.bus import connect


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    client = await connect(nats_url, "test-client", attempts=3)
    yield client
    await client.drain()
