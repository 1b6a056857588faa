"""The operator actions under the least-privilege NATS users (shared/natsauth.py): the
gateway lists by user, restarts from a step, runs a bulk job and re-drives a dead letter;
the worker keeps the index of what it writes; nobody trips a permissions violation."""

from __future__ import annotations

import asyncio

from services.demo.workflows import greet
from shared.bus import Names
from shared.catalog import routes
from shared.natsauth import GATEWAY, setup_topology
from shared.workflow import BulkFilter, Instances, Registry, Worker
from tests.integration.deploy.test_nats_permissions import NS, auth_server, connect_as
from tests.support.engine import engine_settings, wait_for

__all__ = ["auth_server", "connect_as"]  # the fixtures, shared with the permissions test


async def test_operator_actions_as_the_least_privileged_users(auth_server, connect_as):
    """Index writes and deletes, user lists, restart from a step, a bulk restart, dead
    letters read, re-driven and purged: all allowed to the identities that need them."""
    names = Names(NS)
    await setup_topology(engine_settings(NS, nats_url=auth_server.url("admin")))
    admin = await connect_as("admin")
    assert (await admin.nc.jetstream().stream_info(f"{NS}_index")).config.allow_msg_ttl

    gateway = await connect_as(GATEWAY)
    settings = engine_settings(NS, nats_url="unused")
    instances = Instances(gateway.nc, names, routes(), settings=settings)
    demo = await connect_as("demo")
    worker = Worker(demo.nc, Registry([greet]), None, settings)
    task = asyncio.create_task(worker.run())
    try:
        for n in range(3):
            params = {"name": f"n{n}", "pause_seconds": 0.1, "userId": f"u{n % 2}"}
            await instances.trigger("demo-greeting", params, f"lp{n}")
        for n in range(3):
            assert (await wait_for(instances, "demo-greeting", f"lp{n}")).status == "complete"
        mine = await instances.list("demo-greeting", user="u0")
        assert sorted(s.instance_id for s in mine.items) == ["lp0", "lp2"]

        again = await instances.restart("demo-greeting", "lp1", "sign")
        assert [s.name for s in again.steps] == ["compose", "pause"]
        done = await wait_for(
            instances,
            "demo-greeting",
            "lp1",
            lambda s: s.generation == 1 and s.status == "complete",
        )
        assert done.output["greeting"].startswith("Hello, n1!")

        job = await instances.bulk(
            "restart", BulkFilter(workflow="demo-greeting", user="u0"), rate=100
        )
        assert (job.total, job.acted, job.failed) == (2, 2, 0)

        await gateway.nc.publish(names.run_subject("demo-greeting"), b"not json")
        await gateway.nc.flush()
        for _ in range(200):
            letters = (await instances.dead_letters("demo-greeting")).items
            if letters:
                break
            await asyncio.sleep(0.1)
        assert len(letters) == 1
        await instances.redrive(letters[0][0])
        for _ in range(200):
            letters = (await instances.dead_letters("demo-greeting")).items
            if letters:
                break
            await asyncio.sleep(0.1)
        assert await instances.purge_dead_letters("demo-greeting") == 1
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)
    assert gateway.errors == []
    assert demo.errors == []
