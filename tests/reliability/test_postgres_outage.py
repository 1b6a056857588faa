"""RELIABILITY R15: PostgreSQL stopped for 5 s while 100 runs of PG-writing steps are half
done (a real server stopped and started, an embedded one of this test's own so that the
session's is not disturbed): all complete, `dup_rows` = 0, each run delivered at most
`max_deliver` times, no dead letter."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from shared.bus import Names
from shared.embedded import PostgresServer
from shared.workflow import Context, Registry, RetryPolicy, workflow
from shared.workflow.model import decode_run
from tests.support.engine import engine_settings, prepare, running_worker, wait_all
from tests.support.ledger import Ledger, create_schema, dup_rows, write_effect

OUTAGE = 5.0
MAX_DELIVER = 5


@pytest.fixture
def own_postgres(postgres_server: PostgresServer | None) -> Iterator[PostgresServer]:
    if postgres_server is None:
        pytest.skip("needs the embedded PostgreSQL (TEST_DATABASE_URL is set)")
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()
        if server.data_dir is not None:
            shutil.rmtree(server.data_dir, ignore_errors=True)


def make_registry(dsn: str) -> Registry:
    pools: list[asyncpg.Pool] = []

    async def pool() -> asyncpg.Pool:
        if not pools:
            pools.append(await asyncpg.create_pool(dsn, min_size=1, max_size=8))
        return pools[0]

    async def plain(run: str, step: str, seconds: float) -> int:
        async with (await pool()).acquire() as conn:
            attempt = await write_effect(conn, run, step, os.getpid())
        await asyncio.sleep(seconds)
        return attempt

    async def order(run: str, step: str) -> dict[str, Any]:
        """A business row with its output row in one transaction: a replay writes nothing."""
        async with (await pool()).acquire() as conn, conn.transaction():
            done = await conn.fetchval(
                "SELECT output FROM step_outputs WHERE run_id = $1 AND step = $2", run, step
            )
            if done is not None:
                output: dict[str, Any] = json.loads(done)
                return output
            attempt = await write_effect(conn, run, step, os.getpid())
            await conn.execute(
                "INSERT INTO orders (business_key, run_id) VALUES ($1, $2)", f"order-{run}", run
            )
            output = {"attempt": attempt}
            await conn.execute(
                "INSERT INTO step_outputs (run_id, step, output) VALUES ($1, $2, $3)",
                run,
                step,
                json.dumps(output),
            )
        return output

    # Retries (1, 2, 4, 4, 4 … s) that outlast a 5 s outage, as a PG-writing step's must.
    @workflow("pgwrites", retry=RetryPolicy(limit=8, delay=1.0, max_delay=4.0))
    async def pgwrites(ctx: Context[None], params: dict[str, Any]) -> list[Any]:
        run = ctx.instance_id
        return [
            await ctx.step("step-1", plain, run, "step-1", 0.0),
            await ctx.step("step-2", order, run, "step-2"),
            await ctx.step("step-3", plain, run, "step-3", 0.5),
            await ctx.step("step-4", plain, run, "step-4", 0.0),
        ]

    return Registry([pgwrites])


async def finished_runs(dsn: str) -> tuple[int, int]:
    """(runs past step 1, runs past step 4) from the ledger."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(DISTINCT run_id) FILTER (WHERE step = 'step-1') AS started, "
            "count(DISTINCT run_id) FILTER (WHERE step = 'step-4') AS ended FROM effects"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["started"]), int(row["ended"])


@pytest.mark.parametrize("runs", [pytest.param(100, id="100-runs")])
async def test_r15_postgres_down_5s_mid_run(nc, nats_url, prefix, own_postgres, runs):
    admin = await asyncpg.connect(own_postgres.dsn())
    try:
        await admin.execute('CREATE DATABASE "r15"')
    finally:
        await admin.close()
    dsn = own_postgres.dsn("r15")
    await create_schema(dsn)
    registry = make_registry(dsn)
    settings = engine_settings(prefix, ack_wait=2.0, max_deliver=MAX_DELIVER)
    instances = await prepare(nc, registry, settings)
    names = Names(prefix)
    js = nc.jetstream()
    ids = [f"p{i}" for i in range(runs)]
    loop = asyncio.get_running_loop()
    async with running_worker(nats_url, registry, settings):
        await asyncio.gather(*(instances.trigger("pgwrites", {}, i) for i in ids))
        deadline = loop.time() + 120
        while True:
            started, ended = await finished_runs(dsn)
            if ended >= runs // 2:
                break
            assert loop.time() < deadline, f"only {ended}/{runs} runs got to step 4"
            await asyncio.sleep(0.1)
        await asyncio.to_thread(own_postgres.stop)
        stopped = loop.time()
        # The fault lands mid-run: some runs are between their first and last step.
        in_flight = started - ended
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(own_postgres.start)
        down = loop.time() - stopped
        states, took = await wait_all(instances, "pgwrites", ids, timeout=240)
        consumer = await js.consumer_info(names.stream, names.consumer("pgwrites"))
        dead = (await js.stream_info(names.dlq_stream)).state.messages
    assert down >= OUTAGE
    assert in_flight > 0 and ended < runs, f"the outage did not land mid-run ({started}, {ended})"
    done = sum(s.status == "complete" for s in states)
    assert done == runs, f"{done}/{runs} complete: " + str(
        [(s.instance_id, s.status, s.error) for s in states if s.status != "complete"][:3]
    )
    assert dead == 0, f"{dead} dead letters"
    dup, rows = await dup_rows(dsn)
    assert rows == runs and dup == 0, f"dup_rows = {dup} of {rows} rows"
    ledger = await Ledger.read(dsn)
    assert {e.run_id for e in ledger.rows if e.step == "step-4"} == set(ids)
    # Deliveries per run: its messages in the work stream, each delivered once, plus every
    # redelivery the consumer made at all (charged to each run: an upper bound).
    per_run: Counter[str] = Counter()
    info = await js.stream_info(names.stream)
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await js.get_msg(names.stream, seq)
        if raw.subject in (names.run_subject("pgwrites"), names.wake_subject("pgwrites")):
            per_run[decode_run(raw.data or b"").instance_id] += 1
    messages = sum(per_run.values())
    redeliveries = consumer.delivered.consumer_seq - messages
    assert redeliveries >= 0, (consumer.delivered, messages)
    worst = max(per_run.values()) + redeliveries
    assert worst <= MAX_DELIVER, (
        f"deliveries per run up to {worst} (> max_deliver {MAX_DELIVER}): "
        f"{messages} messages, {redeliveries} redeliveries"
    )
    retried = sum(1 for s in states for step in s.steps if step.attempts > 1)
    print(
        f"R15 {runs} runs: PG down {down:.1f}s with {in_flight} runs in flight, "
        f"{runs - ended} not done; {done}/{runs} complete {took:.1f}s after the restart; "
        f"steps retried {retried}; deliveries per run <= {worst} ({redeliveries} "
        f"redeliveries); dup_rows {dup}; dead letters {dead}"
    )
