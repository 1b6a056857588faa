"""The reliability ledger: `effects(run_id, step, attempt, ts)` in PostgreSQL, written
before each side effect, and the harness's metrics computed from it (RELIABILITY (c)).

- `reexec_after_record`: ledger attempts of (run, step) later than that step's record:
  the JetStream timestamp of the first KV revision of the run's record that holds the
  step complete, seen by a `RecordWatch` (an ordered consumer on the bucket's stream,
  started before the runs), so the time is the server's, not an observer's.
- `dup_rows`: `count(*) - count(distinct business_key)` of the business table, which has
  no unique index on purpose — only the engine and the step pattern keep it duplicate-free.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import DeliverPolicy

from shared.bus import Names
from shared.workflow.model import decode_state

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    id bigserial PRIMARY KEY,
    run_id text NOT NULL,
    step text NOT NULL,
    attempt int NOT NULL,
    ts double precision NOT NULL,
    pid int NOT NULL
);
CREATE INDEX IF NOT EXISTS effects_run_step ON effects (run_id, step);
-- The business rows a PG-writing step inserts: no unique index, so duplicates would show.
CREATE TABLE IF NOT EXISTS orders (
    id bigserial PRIMARY KEY,
    business_key text NOT NULL,
    run_id text NOT NULL
);
-- The DBOS pattern: a step's output row, committed in the same transaction as its writes.
CREATE TABLE IF NOT EXISTS step_outputs (
    run_id text NOT NULL,
    step text NOT NULL,
    output jsonb NOT NULL,
    PRIMARY KEY (run_id, step)
);
"""


async def create_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SCHEMA)
    finally:
        await conn.close()


async def write_effect(conn: Any, run_id: str, step: str, pid: int) -> int:
    """One ledger line, before the effect; returns the attempt number it got."""
    attempt: int = await conn.fetchval(
        "INSERT INTO effects (run_id, step, attempt, ts, pid) "
        "SELECT $1, $2, coalesce(max(attempt), 0) + 1, $3, $4 FROM effects "
        "WHERE run_id = $1 AND step = $2 RETURNING attempt",
        run_id,
        step,
        time.time(),
        pid,
    )
    return attempt


@dataclass(frozen=True)
class Effect:
    run_id: str
    step: str
    attempt: int
    ts: float
    pid: int


@dataclass
class Ledger:
    """The ledger rows of one test, read back for its assertions."""

    rows: list[Effect]

    @classmethod
    async def read(cls, dsn: str) -> Ledger:
        conn = await asyncpg.connect(dsn)
        try:
            records = await conn.fetch(
                "SELECT run_id, step, attempt, ts, pid FROM effects ORDER BY ts"
            )
        finally:
            await conn.close()
        return cls([Effect(*r.values()) for r in records])

    def counts(self) -> Counter[tuple[str, str]]:
        return Counter((e.run_id, e.step) for e in self.rows)

    def per_step(self) -> Counter[str]:
        return Counter(e.step for e in self.rows)

    def runs_at(self, step: str) -> set[str]:
        return {e.run_id for e in self.rows if e.step == step}

    def reexec_after_record(self, watch: RecordWatch) -> list[Effect]:
        """The attempts that started after their step was recorded complete."""
        return [
            e
            for e in self.rows
            if (at := watch.recorded.get((e.run_id, e.step))) is not None and e.ts > at
        ]


class RecordWatch:
    """When each (run, step) was first recorded complete, from the instance bucket's
    stream: every revision, with the time JetStream stored it."""

    def __init__(self) -> None:
        self.recorded: dict[tuple[str, str], float] = {}
        self.revisions = 0
        self._sub: Any = None

    @classmethod
    async def start(cls, nc: NATS, names: Names, workflow: str) -> RecordWatch:
        watch = cls()
        js = nc.jetstream()
        watch._sub = await js.subscribe(
            f"$KV.{names.state_bucket}.{workflow}.>",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
            cb=watch._seen,
        )
        return watch

    async def _seen(self, msg: Msg) -> None:
        if not msg.data:
            return  # a delete or purge marker
        state = decode_state(msg.data)
        at = msg.metadata.timestamp.timestamp()
        self.revisions += 1
        for step in state.steps:
            if step.status == "complete":
                self.recorded.setdefault((state.instance_id, step.name), at)

    async def settle(self, steps: int, timeout: float = 30.0) -> None:
        """Wait until `steps` (run, step) records have been seen, then stop watching."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.recorded) < steps and loop.time() < deadline:
            await asyncio.sleep(0.1)
        assert len(self.recorded) >= steps, f"saw {len(self.recorded)}/{steps} step records"
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None


async def dup_rows(dsn: str, table: str = "orders") -> tuple[int, int]:
    """(`count(*) - count(distinct business_key)`, `count(*)`) of a business table."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            f"SELECT count(*) - count(DISTINCT business_key) AS dup, count(*) AS n FROM {table}"
        )
    finally:
        await conn.close()
    assert row is not None
    return int(row["dup"]), int(row["n"])
