"""The scheduler as processes: replicas publish one event per slot; a SIGKILLed replica, or
a restart, misses none."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import nats
import nats.js.errors
import pytest

from shared.bus import Names
from shared.embedded import free_port
from shared.schedules import read_schedules
from shared.workflow import Context, EventEnvelope, Registry, workflow
from tests.support.engine import engine_settings, prepare, running_worker
from tests.support.procs import REPO_ROOT, Proc, spawn

EVERY_SECOND = "* * * * * *"
SLOT_LOG: list[str] = []  # the (internal) event id of every run, as it executes


async def _note(event_id: str) -> str:
    SLOT_LOG.append(event_id)
    return event_id


@workflow("slot-runs", on="cron/weekly-summary")
async def slot_runs(ctx: Context[None], params: Any) -> str:
    assert ctx.trigger is not None and ctx.trigger.event_id is not None
    return await ctx.step("note", _note, ctx.trigger.event_id)


SLOT_RUNS = Registry([slot_runs])
NEVER_SOON = "0 0 1 1 *"  # 1 January: does not fire during a test


@pytest.fixture
async def schedulers(nats_url, prefix, tmp_path) -> AsyncIterator[list[Proc]]:
    procs: list[Proc] = []
    yield procs
    for proc in procs:
        proc.kill()


def start(procs: list[Proc], nats_url: str, prefix: str, tmp: Path, n: int) -> Proc:
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": prefix,
        "WEEKLY_SUMMARY_CRON": EVERY_SECOND,
        "DAILY_DISCOVERY_CRON": NEVER_SOON,
        "SCHEDULER_CATCHUP": "3600",
        "LOG_LEVEL": "INFO",
    }
    proc = spawn("services.scheduler", env, tmp / f"scheduler{n}.log")
    procs.append(proc)
    return proc


async def slots_published(nats_url: str, prefix: str) -> list[int]:
    """The slot (event ts, ms) of every cron/weekly-summary event stored, in stream order."""
    names = Names(prefix)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        subject = names.event_subject("cron/weekly-summary")
        try:
            info = await js.stream_info(names.stream, subjects_filter=subject)
        except nats.js.errors.NotFoundError:  # the scheduler has not created it yet
            return []
        total = (info.state.subjects or {}).get(subject, 0)
        if not total:
            return []
        sub = await js.subscribe(subject, ordered_consumer=True)
        slots = []
        for _ in range(total):
            msg = await sub.next_msg(timeout=10)
            envelope = msgspec.json.decode(msg.data, type=EventEnvelope)
            assert envelope.ts is not None
            slots.append(envelope.ts)
        await sub.unsubscribe()
        return slots
    finally:
        await nc.drain()


async def wait_for_slots(nats_url: str, prefix: str, count: int, procs: list[Proc]) -> list[int]:
    for _ in range(1200):
        slots = await slots_published(nats_url, prefix)
        if len(slots) >= count:
            return slots
        await asyncio.sleep(0.1)
    logs = "\n".join(p.output()[-2000:] for p in procs)
    raise AssertionError(f"fewer than {count} slots published\n{logs}")


def assert_every_slot_once(slots: list[int]) -> None:
    assert len(slots) == len(set(slots)), "a slot was published twice"
    ordered = sorted(slots)
    gaps = [b - a for a, b in itertools.pairwise(ordered) if b - a != 1000]
    assert gaps == [], f"slots missed: gaps of {gaps} ms"


async def test_two_replicas_one_event_per_slot_and_a_sigkill_misses_none(
    schedulers, nats_url, prefix, tmp_path
):
    """Two schedulers on a per-second schedule: one event per slot over 20+ slots, also
    while one of them is SIGKILLed across 3+ slots and started again."""
    # Runs per slot (RELIABILITY R14): a workflow on the cron event, run by a worker the
    # whole time, counts how often each slot's run executes.
    runs: list[str] = []
    settings = engine_settings(prefix)
    checker = await nats.connect(nats_url)
    instances = await prepare(checker, SLOT_RUNS, settings)
    try:
        async with running_worker(nats_url, SLOT_RUNS, settings):
            SLOT_LOG[:] = []
            first = start(schedulers, nats_url, prefix, tmp_path, 1)
            start(schedulers, nats_url, prefix, tmp_path, 2)
            before = await wait_for_slots(nats_url, prefix, 6, schedulers)
            first.kill()
            during = await wait_for_slots(nats_url, prefix, len(before) + 4, schedulers)
            start(schedulers, nats_url, prefix, tmp_path, 3)
            slots = await wait_for_slots(nats_url, prefix, len(during) + 12, schedulers)
            for proc in schedulers:
                proc.kill()  # no more slots: the count below is final
            slots = await slots_published(nats_url, prefix)
            deadline = asyncio.get_running_loop().time() + 60
            while len(SLOT_LOG) < len(slots):
                assert asyncio.get_running_loop().time() < deadline, (len(SLOT_LOG), len(slots))
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # a duplicate run would show up by now
            runs = list(SLOT_LOG)
        page = await instances.list("slot-runs", "complete", limit=500)
    finally:
        await checker.drain()
    assert len(slots) >= 22
    assert_every_slot_once(slots)
    # Runs per slot = 1: one run per published slot, no slot run twice.
    assert len(runs) == len(slots) and len(set(runs)) == len(runs), (len(runs), len(slots))
    assert len(page.items) == len(slots)  # one complete instance per slot
    both = [p.output() for p in schedulers]
    assert all("fired slot" in text for text in both), both  # every replica really published
    nc = await nats.connect(nats_url)
    try:
        states = {s.job: s for s in await read_schedules(nc.jetstream(), prefix)}
    finally:
        await nc.drain()
    weekly = states["weekly-summary"]
    assert weekly.expression == EVERY_SECOND and weekly.event == "cron/weekly-summary"
    assert weekly.last_slot is not None and weekly.next_fire is not None
    assert weekly.next_fire > weekly.last_slot
    assert states["daily-discovery"].last_slot is None

    # The same records through the gateway's GET /schedules and `howlerhire schedules`.
    port = free_port()
    token = "scheduler-e2e-token-0123456789"
    gateway = spawn(
        "services.gateway",
        {
            "NATS_URL": nats_url,
            "HOWLERHIRE_NAMESPACE": prefix,
            "WORKFLOWS_AUTH_TOKEN": token,
            "GATEWAY_PORT": str(port),
        },
        tmp_path / "gateway.log",
    )
    schedulers.append(gateway)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=url, timeout=5) as client:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get("/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)
        listed = await client.get("/schedules", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200, listed.text
    assert [row["job"] for row in listed.json()] == ["daily-discovery", "weekly-summary"]
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shared.cli", "schedules"],
        cwd=REPO_ROOT,
        env={**os.environ, "GATEWAY_URL": url, "WORKFLOWS_AUTH_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert lines[0].split()[:3] == ["job", "expression", "tz"]
    weekly_line = next(line for line in lines if line.startswith("weekly-summary"))
    assert EVERY_SECOND in weekly_line and "Z" in weekly_line


async def test_restart_catches_up_the_slots_it_missed(schedulers, nats_url, prefix, tmp_path):
    """The only scheduler SIGKILLed for several slots: started again, it fires the slots
    missed within SCHEDULER_CATCHUP, so none is lost."""
    only = start(schedulers, nats_url, prefix, tmp_path, 1)
    before = await wait_for_slots(nats_url, prefix, 4, schedulers)
    only.kill()
    await asyncio.sleep(4)
    assert len(await slots_published(nats_url, prefix)) == len(before)
    again = start(schedulers, nats_url, prefix, tmp_path, 2)
    slots = await wait_for_slots(nats_url, prefix, len(before) + 8, schedulers)
    assert_every_slot_once(slots)
    assert "catching up missed slot" in again.output()
