"""/metrics of real service processes: the gateway's on METRICS_PORT beside its API, and a
worker that cannot reach NATS saying so (nats_connected 0) while it keeps trying."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from shared.embedded import free_port
from tests.integration.metrics.scrape import Samples, parse, value
from tests.support.procs import Proc, spawn, wait_http

TOKEN = "metrics-token-0123456789abcdef"


async def scrape_when_up(url: str, proc: Proc) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(300):
            assert proc.alive(), proc.output()
            try:
                reply = await client.get(url)
                if reply.status_code == 200:
                    return parse(reply.text)
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"no /metrics at {url}: {proc.output()}")


async def test_gateway_serves_its_request_counts_on_the_metrics_port(
    nats_url: str, prefix: str, tmp_path: Path
) -> None:
    port, metrics_port = free_port(), free_port()
    proc = spawn(
        "services.gateway",
        {
            "NATS_URL": nats_url,
            "HOWLERHIRE_NAMESPACE": prefix,
            "WORKFLOWS_AUTH_TOKEN": TOKEN,
            "GATEWAY_PORT": str(port),
            "METRICS_PORT": str(metrics_port),
            "LOG_FORMAT": "json",
        },
        tmp_path / "gateway.log",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_http(base, proc)  # one 200 of /health
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/health")).status_code == 200
            assert (await http.get("/health")).status_code == 200
            assert (await http.get("/workflows")).status_code == 401
            ok = await http.get("/workflows", headers={"Authorization": f"Bearer {TOKEN}"})
            assert ok.status_code == 200
        got = await scrape_when_up(f"http://127.0.0.1:{metrics_port}/metrics", proc)
        requests = "howlerhire_http_requests_total"
        assert value(got, requests, method="GET", route="/health", status="200") == 3
        assert value(got, requests, method="GET", route="/workflows", status="401") == 1
        assert value(got, requests, method="GET", route="/workflows", status="200") == 1
        assert value(got, "howlerhire_nats_connected") == 1
        # The API port does not serve them (they are not behind the bearer token).
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/metrics")).status_code in (401, 404)
    finally:
        proc.terminate(30)  # uvicorn re-raises SIGTERM once it has shut down: no exit 0
    records = [json.loads(line) for line in proc.output().splitlines() if line.strip()]
    assert records and all(r["service"] == "gateway" for r in records)
    assert any(r["message"].startswith("GET /health 200") for r in records)
    assert TOKEN not in proc.output()


async def test_a_worker_without_nats_reports_it_on_metrics(prefix: str, tmp_path: Path) -> None:
    metrics_port = free_port()
    proc = spawn(
        "tests.support.worker_app",
        {
            "NATS_URL": f"nats://127.0.0.1:{free_port()}",  # nothing listens there
            "HOWLERHIRE_NAMESPACE": prefix,
            "METRICS_PORT": str(metrics_port),
            "LEDGER_FILE": str(tmp_path / "ledger"),
        },
        tmp_path / "worker.log",
    )
    try:
        got = await scrape_when_up(f"http://127.0.0.1:{metrics_port}/metrics", proc)
        assert value(got, "howlerhire_nats_connected") == 0
        # Its workflows' series exist from the start, at 0 (what the alerts compare to).
        assert value(got, "howlerhire_runs_started_total", workflow="chain") == 0
        assert value(got, "howlerhire_runs_finished_total", workflow="chain", status="errored") == 0
    finally:
        proc.terminate(30)


@pytest.mark.parametrize(
    ("module", "variable", "bad"),
    [
        ("services.gateway", "LOG_FORMAT", "yaml"),
        ("services.scheduler", "LOG_FORMAT", "xml"),
        ("tests.support.worker_app", "LOG_FORMAT", "pretty"),
        ("tests.support.worker_app", "METRICS_PORT", "70000"),
        ("services.scheduler", "METRICS_PORT", "-1"),
    ],
)
async def test_a_bad_log_format_or_metrics_port_stops_the_service_naming_it(
    module: str, variable: str, bad: str, nats_url: str, tmp_path: Path
) -> None:
    env = {"NATS_URL": nats_url, "WORKFLOWS_AUTH_TOKEN": TOKEN, variable: bad}
    proc = spawn(module, env, tmp_path / "service.log")
    code = await asyncio.to_thread(proc.wait, 60)
    assert code == 2, proc.output()
    assert variable in proc.output() and "Traceback" not in proc.output()
