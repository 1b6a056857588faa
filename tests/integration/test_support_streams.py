"""The test helper that lists streams pages past the server's 256-stream page, so scans
over "every stream" of a late test in a full run see its own streams."""

from __future__ import annotations

from nats.js.api import StorageType, StreamConfig

from shared.bus import connect
from tests.support.engine import all_streams


async def test_all_streams_pages_past_one_page(nats_url: str, prefix: str) -> None:
    nc = await connect(nats_url, "test-streams", attempts=3)
    js = nc.jetstream()
    names = [f"{prefix}_s{n}" for n in range(300)]
    try:
        for name in names:
            await js.add_stream(
                StreamConfig(name=name, subjects=[f"{name}.x"], storage=StorageType.MEMORY)
            )
        first_page = {s.config.name for s in await js.streams_info()}
        listed = {s.config.name for s in await all_streams(js)}
        assert len(first_page) <= 256 and not set(names) <= first_page
        assert set(names) <= listed
    finally:
        for name in names:
            await js.delete_stream(name)
        await nc.drain()
