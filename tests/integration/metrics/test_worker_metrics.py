"""/metrics of a real worker process moving as real runs complete (NATS + PostgreSQL),
and its JSON log lines carrying the run's fields with no secret in them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.bus import Names
from shared.embedded import free_port
from shared.workflow import Instances
from tests.integration.metrics.scrape import Samples, parse, value
from tests.support.engine import engine_settings, prepare, wait_for
from tests.support.metrics_app import LEAKY_URL, REGISTRY
from tests.support.procs import Proc, spawn

WORKFLOWS = ("mx-db", "mx-flaky", "mx-broken", "mx-cached", "mx-limited", "mx-gated")


@pytest.fixture
async def instances(nc: Any, prefix: str) -> Instances:
    return await prepare(nc, REGISTRY, engine_settings(prefix))


@pytest.fixture
async def nc(nats_url: str) -> Any:
    from shared.bus import connect

    client = await connect(nats_url, "metrics-test", attempts=3)
    yield client
    await client.drain()


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(url)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return parse(reply.text)


async def until(url: str, want: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Samples:
    """Scrape until every wanted sample has its value (60 s at most); fail showing the
    difference. The worker counts right after it records, so a test that saw a record
    change may scrape a moment before the count."""
    got: Samples = {}
    for _ in range(600):
        got = await scrape(url)
        if all(got.get((n, frozenset(lab))) == v for (n, lab), v in want.items()):
            return got
        await asyncio.sleep(0.1)
    diff = {
        (n, lab): (got.get((n, frozenset(lab))), v)
        for (n, lab), v in want.items()
        if got.get((n, frozenset(lab))) != v
    }
    raise AssertionError(f"metrics never reached the expected values (got, want): {diff}")


def k(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


async def started(proc: Proc, url: str) -> None:
    for _ in range(600):
        assert proc.alive(), proc.output()
        if "worker started" in proc.output():
            try:
                await scrape(url)
                return
            except httpx.HTTPError:
                pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker did not start: {proc.output()}")


async def test_metrics_count_real_runs_exactly_and_logs_carry_run_fields(
    instances: Instances, nc: Any, prefix: str, nats_url: str, database_url: str, tmp_path: Path
) -> None:
    import asyncpg

    db = await asyncpg.connect(database_url)
    try:
        await db.execute("CREATE TABLE mx_rows (instance text PRIMARY KEY)")
    finally:
        await db.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    gate = tmp_path / "gate"
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = spawn(
        "tests.support.metrics_app",
        {
            "NATS_URL": nats_url,
            "HOWLERHIRE_NAMESPACE": prefix,
            "DATABASE_URL": database_url,
            "METRICS_PORT": str(port),
            "METRICS_REFRESH": "0.2",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "RATE_LIMITS": "mx=1/h",
            "GATE_FILE": str(gate),
            "MARK_DIR": str(marks),
            "ACK_WAIT": "5",
            "SHUTDOWN_GRACE": "5",
        },
        tmp_path / "worker.log",
    )
    try:
        await started(proc, url)
        # Before any run: every series of every workflow exported at 0, connected.
        zero = {k("howlerhire_runs_started_total", workflow=wf): 0.0 for wf in WORKFLOWS}
        zero |= {k("howlerhire_runs_finished_total", workflow=wf, status="errored"): 0.0
                 for wf in WORKFLOWS}  # fmt: skip
        zero[k("howlerhire_nats_connected")] = 1.0
        await until(url, zero)

        ids: dict[str, list[str]] = {wf: [] for wf in WORKFLOWS}

        async def run(wf: str, params: Any = None, *, wait: bool = True) -> str:
            state, _ = await instances.trigger(wf, params or {})
            ids[wf].append(state.instance_id)
            if wait:
                done = await wait_for(instances, wf, state.instance_id, timeout=60)
                assert done.status in ("complete", "errored"), done
            return state.instance_id

        # Three held by the gate (concurrency 1): one delivered, two pending.
        for _ in range(3):
            await run("mx-gated", wait=False)
        await until(url, {
            k("howlerhire_consumer_pending", workflow="mx-gated"): 2.0,
            k("howlerhire_consumer_ack_pending", workflow="mx-gated"): 1.0,
        })  # fmt: skip
        await asyncio.gather(*(run("mx-db") for _ in range(3)))
        await asyncio.gather(run("mx-flaky"), run("mx-flaky"))
        await run("mx-broken")
        await run("mx-cached", {"key": "k1"})
        await run("mx-cached", {"key": "k1"})  # a cache hit
        await run("mx-limited")
        parked = await run("mx-limited", wait=False)  # 1 token an hour: it parks
        await wait_for(instances, "mx-limited", parked, until=lambda s: s.status == "waiting")
        # A message no worker can decode: a dead letter.
        names = Names(prefix)
        await nc.jetstream().publish(names.run_subject("mx-db"), b"{not json")
        gate.touch()
        db = await asyncpg.connect(database_url)
        try:
            rows = await db.fetch("SELECT instance FROM mx_rows")
        finally:
            await db.close()
        assert sorted(r["instance"] for r in rows) == sorted(ids["mx-db"])
        for iid in ids["mx-gated"]:
            await wait_for(instances, "mx-gated", iid, timeout=60)

        want = {
            k("howlerhire_runs_started_total", workflow="mx-db"): 3.0,
            k("howlerhire_runs_started_total", workflow="mx-flaky"): 2.0,
            k("howlerhire_runs_started_total", workflow="mx-broken"): 1.0,
            k("howlerhire_runs_started_total", workflow="mx-cached"): 2.0,
            k("howlerhire_runs_started_total", workflow="mx-limited"): 2.0,
            k("howlerhire_runs_started_total", workflow="mx-gated"): 3.0,
            k("howlerhire_runs_finished_total", workflow="mx-db", status="complete"): 3.0,
            k("howlerhire_runs_finished_total", workflow="mx-flaky", status="complete"): 2.0,
            k("howlerhire_runs_finished_total", workflow="mx-broken", status="errored"): 1.0,
            k("howlerhire_runs_finished_total", workflow="mx-broken", status="complete"): 0.0,
            k("howlerhire_runs_finished_total", workflow="mx-cached", status="complete"): 2.0,
            k("howlerhire_runs_finished_total", workflow="mx-limited", status="complete"): 1.0,
            k("howlerhire_runs_finished_total", workflow="mx-gated", status="complete"): 3.0,
            k("howlerhire_run_duration_seconds_count", workflow="mx-db", status="complete"): 3.0,
            k("howlerhire_run_queue_seconds_count", workflow="mx-db"): 3.0,
            k("howlerhire_step_attempts_total", workflow="mx-db", outcome="complete"): 6.0,
            k("howlerhire_step_attempts_total", workflow="mx-flaky", outcome="retry"): 2.0,
            k("howlerhire_step_attempts_total", workflow="mx-flaky", outcome="complete"): 2.0,
            k("howlerhire_step_attempts_total", workflow="mx-broken", outcome="errored"): 1.0,
            k("howlerhire_step_attempts_total", workflow="mx-broken", outcome="retry"): 0.0,
            k("howlerhire_step_attempts_total", workflow="mx-cached", outcome="complete"): 1.0,
            k("howlerhire_step_attempts_total", workflow="mx-cached", outcome="cached"): 1.0,
            k("howlerhire_step_attempt_duration_seconds_count", workflow="mx-flaky",
              outcome="retry"): 2.0,
            k("howlerhire_step_retries_total", workflow="mx-flaky", outcome="complete"): 2.0,
            k("howlerhire_step_retries_total", workflow="mx-db", outcome="complete"): 0.0,
            k("howlerhire_steps_cached_total", workflow="mx-cached"): 1.0,
            k("howlerhire_ratelimit_waits_total", limit="mx", mode="parked"): 1.0,
            k("howlerhire_dead_letters_total", workflow="mx-db",
              reason="undecodable_run_message"): 1.0,
            k("howlerhire_consumer_pending", workflow="mx-gated"): 0.0,
            k("howlerhire_consumer_ack_pending", workflow="mx-gated"): 0.0,
            k("howlerhire_nats_connected"): 1.0,
        }  # fmt: skip
        got = await until(url, want)
        # No instance id ever becomes a label value (bounded cardinality).
        labels = {v for (_, lab) in got for _, v in lab}
        assert not labels & {iid for group in ids.values() for iid in group}
        assert value(got, "howlerhire_ratelimit_waits_total", limit="mx", mode="inline") is None
    finally:
        assert proc.terminate(30) == 0, proc.output()

    lines = [line for line in proc.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(r["service"] == "metrics-app" and r["level"] and r["ts"] for r in records)
    # Every line logged inside a step names the run, the step and the attempt.
    in_steps = [r for r in records if r["logger"] == "tests.metrics_app"]
    assert len(in_steps) >= 3 + 2 * 2 + 1 + 1 + 1
    for r in in_steps:
        assert {"workflow", "instance", "generation", "step", "attempt"} <= r.keys(), r
        assert r["instance"] in ids[r["workflow"]], r
        assert r["generation"] == 0
    flaky = [r for r in in_steps if r["workflow"] == "mx-flaky"]
    assert sorted(
        (r["message"], r["attempt"]) for r in flaky if r["instance"] == ids["mx-flaky"][0]
    ) == [
        ("flaky step failing on purpose", 1),
        ("flaky step succeeding", 2),
    ]
    # The engine's own lines inside a run carry the same fields: the retry line (in the
    # attempt) with the step; the run's end (after its last step) without one.
    retry = [r for r in records if "failed (attempt 1)" in r["message"]]
    assert {(r["workflow"], r["step"], r["attempt"]) for r in retry} == {("mx-flaky", "flaky", 1)}
    assert len(retry) == 2
    [errored] = [r for r in records if r["message"].startswith("mx-broken/")]
    assert errored["instance"] == ids["mx-broken"][0] and "step" not in errored
    # Lines outside any run carry no run fields.
    outside = [r for r in records if "worker started" in r["message"]]
    assert outside and all("workflow" not in r for r in outside)
    # The password in the URL the step logged never reached the output.
    text = proc.output()
    assert "pw-LEAK-4d1b9e" not in text and LEAKY_URL not in text
    assert "postgresql://app:***@db.internal:5432/app" in text
