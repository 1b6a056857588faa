"""The dashboard's reads as the least-privileged gateway user (shared/natsauth.py): the
change feed (an ordered consumer, flow control included) and the overview's numbers."""

from __future__ import annotations

import asyncio

from services.gateway.ui.overview import workflow_stats
from shared.bus import Names
from shared.catalog import routes
from shared.natsauth import GATEWAY, setup_topology
from shared.workflow import Instances
from shared.workflow.feed import changes, last_sequence
from tests.integration.deploy.test_nats_permissions import NS, auth_server, connect_as
from tests.support.engine import engine_settings

__all__ = ["auth_server", "connect_as"]  # the fixtures, shared with the permissions test

RECORDS = 400


async def test_the_feed_and_the_overview_as_the_gateway_user(auth_server, connect_as):
    names = Names(NS)
    await setup_topology(engine_settings(NS, nats_url=auth_server.url("admin")))
    gateway = await connect_as(GATEWAY)
    instances = Instances(gateway.nc, names, routes(), settings=engine_settings(NS))
    await instances.store()
    start = await last_sequence(gateway.nc, names)
    # Enough bytes (~1.6 MB) that the server asks the ordered consumer for flow control.
    blob = "x" * 4000
    await asyncio.gather(
        *(
            instances.trigger("demo-greeting", {"name": "n", "blob": blob}, f"f{n}")
            for n in range(RECORDS)
        )
    )
    seen: set[str] = set()

    async def read() -> None:
        async for change in changes(gateway.nc, names, after=start):
            assert change is not None and change.record is not None
            seen.add(change.instance_id)
            if len(seen) == RECORDS:
                return

    await asyncio.wait_for(read(), 120)
    assert seen == {f"f{n}" for n in range(RECORDS)}

    rows = {row.workflow: row for row in await workflow_stats(instances)}
    assert rows["demo-greeting"].counts["queued"] == RECORDS
    assert rows["demo-greeting"].pending == RECORDS  # the start messages, not taken yet
    assert gateway.errors == []
