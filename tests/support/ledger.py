"""The reliability ledger: `effects(run_id, step, attempt, ts)` in PostgreSQL, written
before each side effect, and the harness's metrics computed from it (RELIABILITY (c)).

- `reexec_after_record`: ledger attempts of (run, step) later than that step's record.
  The record time used is the step's `ended_at`, which the worker stamps *before* its
  compare-and-set reaches KV, so the figure can only over-count: 0 is a strict pass.
- `dup_rows`: `count(*) - count(distinct business_key)` of the business table, which has
  no unique index on purpose — only the engine and the step pattern keep it duplicate-free.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from shared.workflow import InstanceState

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

    def reexec_after_record(self, states: Iterable[InstanceState]) -> list[Effect]:
        """The attempts that started after their step was recorded complete."""
        recorded: dict[tuple[str, str], datetime] = {}
        for state in states:
            for step in state.steps:
                if step.status == "complete" and step.ended_at is not None:
                    recorded[(state.instance_id, step.name)] = step.ended_at
        late = []
        for e in self.rows:
            at = recorded.get((e.run_id, e.step))
            if at is not None and e.ts > at.timestamp():
                late.append(e)
        return late


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
