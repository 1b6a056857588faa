"""The operator routes through the real gateway: user filter, restart from a step, bulk,
dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from shared.client import ConflictError, NotFoundError, WorkflowsClient
from tests.integration.gateway.conftest import AUTH, REGISTRY, TOKEN, gateway_app, serving
from tests.support.engine import engine_settings, running_worker


async def until(client: AsyncTestClient, path: str, check: Any, timeout: float = 60) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    body = None
    while loop.time() < deadline:
        response = await client.get(path, headers=AUTH)
        body = response.json()
        if response.status_code == 200 and check(body):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"{path}: last answer {body}")


async def test_operator_routes(nc, nats_url, prefix):
    """userId lists, PATCH restart with `from`, POST /bulk (dry run, then run and follow),
    and a dead letter listed, shown, re-driven once and purged; then shared.client's
    methods for the same."""
    settings = engine_settings(prefix)
    app = gateway_app(nats_url, settings)
    async with (
        AsyncTestClient(app) as client,
        running_worker(nats_url, REGISTRY, settings),
        serving(gateway_app(nats_url, settings)) as url,
        WorkflowsClient(url, TOKEN) as py,
    ):
        for n in range(6):
            body = {"params": {"a": n, "b": 1, "userId": f"u-{n % 2}"}, "instanceId": f"g{n}"}
            response = await client.post("/workflows/adder/instances", json=body, headers=AUTH)
            assert response.status_code == 201, response.text
        for n in range(6):
            await until(
                client, f"/workflows/adder/instances/g{n}", lambda b: b["status"] == "complete"
            )

        mine = await client.get("/instances?userId=u-1&status=complete", headers=AUTH)
        assert sorted(i["instanceId"] for i in mine.json()["instances"]) == ["g1", "g3", "g5"]
        none = await client.get("/workflows/adder/instances?userId=nobody", headers=AUTH)
        assert none.json() == {"instances": [], "nextCursor": None}

        path = "/workflows/adder/instances/g0/status"
        bad = await client.patch(
            path, json={"status": "restart", "from": {"name": "nope"}}, headers=AUTH
        )
        assert bad.status_code == 409
        assert bad.json()["field"] == "from.name"
        wrong = await client.patch(
            path, json={"status": "pause", "from": {"name": "add"}}, headers=AUTH
        )
        assert wrong.status_code == 422
        again = await client.patch(
            path, json={"status": "restart", "from": {"name": "add"}}, headers=AUTH
        )
        assert again.status_code == 200, again.text
        assert again.json()["generation"] == 1
        await until(
            client,
            "/workflows/adder/instances/g0",
            lambda b: b["generation"] == 1 and b["status"] == "complete",
        )

        request = {"workflow": "adder", "status": "complete", "userId": "u-0", "rate": 100}
        dry = await client.post("/bulk/restart", json={**request, "dryRun": True}, headers=AUTH)
        assert dry.status_code == 200, dry.text
        assert (dry.json()["phase"], dry.json()["total"]) == ("preview", 3)
        started = await client.post("/bulk/restart", json=request, headers=AUTH)
        assert started.status_code in (200, 202), started.text
        job = started.json()["id"]
        done = await until(client, f"/bulk/{job}", lambda b: b["phase"] == "done")
        assert (done["total"], done["acted"], done["skipped"]) == (3, 3, 0)
        for n in (0, 2, 4):
            await until(
                client,
                f"/workflows/adder/instances/g{n}",
                lambda b, n=n: (
                    b["generation"] == (2 if n == 0 else 1) and b["status"] == "complete"
                ),
            )
        assert (await client.post("/bulk/nuke", json=request, headers=AUTH)).status_code == 404
        assert (await client.get("/bulk/nosuchjob", headers=AUTH)).status_code == 404

        await nc.publish(f"{prefix}.runs.adder", b"not json")
        letters = await until(client, "/dlq?workflow=adder", lambda b: len(b["deadLetters"]) == 1)
        letter = letters["deadLetters"][0]
        assert letter["reason"] == "undecodable run message"
        shown = await client.get(f"/dlq/{letter['seq']}", headers=AUTH)
        assert shown.json()["payloadPreview"] == "not json"
        first = await client.post(f"/dlq/{letter['seq']}/redrive", headers=AUTH)
        assert first.status_code == 200, first.text
        second = await client.post(f"/dlq/{letter['seq']}/redrive", headers=AUTH)
        assert second.status_code == 404
        # Still broken after the re-drive: dead-lettered anew, exactly once more.
        await until(
            client,
            "/dlq?workflow=adder",
            lambda b: [d["seq"] for d in b["deadLetters"]] not in ([], [letter["seq"]]),
        )
        await asyncio.sleep(1.0)
        assert len((await client.get("/dlq", headers=AUTH)).json()["deadLetters"]) == 1
        purged = await client.post("/dlq/purge", json={"workflow": "adder"}, headers=AUTH)
        assert purged.json() == {"purged": 1}
        assert (await client.get("/dlq", headers=AUTH)).json()["deadLetters"] == []

        # The same through shared.client.
        page = await py.list_instances(workflow="adder", user_id="u-1")
        assert sorted(i.instance_id for i in page.instances) == ["g1", "g3", "g5"]
        assert (await py.bulk("terminate", workflow="adder", dry_run=True)).total == 0
        assert (await py.bulk("restart", workflow="adder", user_id="u-1", dry_run=True)).total == 3
        assert (await py.restart("adder", "g1", from_step="add")).generation == 1
        assert (await py.dead_letters("adder")).dead_letters == []
        assert await py.redrive_all("adder") == 0
        with pytest.raises(NotFoundError):
            await py.redrive(10**9)
        with pytest.raises(ConflictError):
            await py.restart("adder", "g1", from_step="nope")

        # And through the `howlerhire` command (a real process over shared.client).
        env = {**os.environ, "WORKFLOWS_URL": url, "WORKFLOWS_AUTH_TOKEN": TOKEN}

        async def cli(*argv: str) -> tuple[int, list[Any]]:
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "shared.cli", "-o", "json", *argv],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]

        code, out = await cli("list", "--workflow", "adder", "--user", "u-1")
        assert code == 0
        assert sorted(i["instanceId"] for i in out[0]["instances"]) == ["g1", "g3", "g5"]
        code, out = await cli("restart", "adder", "g3", "--from", "add")
        assert (code, out[0]["generation"]) == (0, 1)
        code, out = await cli("bulk", "restart", "--workflow", "adder", "--dry-run")
        assert (code, out[0]["phase"], out[0]["total"]) == (0, "preview", 6)
        code, out = await cli("dlq", "list", "--workflow", "adder")
        assert (code, out[0]["deadLetters"]) == (0, [])
        code, _ = await cli("dlq", "redrive", "999999")
        assert code == 1
