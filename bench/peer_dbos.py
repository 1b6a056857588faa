"""The peer: the seven-step workflow in DBOS, interleaved with the engine: `bench.peer_dbos`.

DBOS Transact (the `dbos` package) as documented: `@DBOS.workflow()` and `@DBOS.step()`
async functions, started with `DBOS.start_workflow_async` and awaited through the handle,
on SQLite (a file) and on PostgreSQL (the embedded server; fsync on, synchronous commit,
its defaults). The engine runs in-process on a nats-server with `sync_interval: always`
(the durability DBOS's databases give), or on `--nats-url`.

DBOS is one object per process: each measurement launches it on its database and
destroys it afterwards, so that no DBOS thread runs while the engine is measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbos import DBOS, SetWorkflowID

from bench.engine import EngineInProcess
from bench.floor import COMPLETION_TIMEOUT
from bench.harness import (
    One,
    Plan,
    Results,
    emit,
    environment,
    nats_servers,
    parser,
    progress,
    ratio,
    run_main,
    run_plan,
    summarise_all,
)
from bench.report import ratio_lines, table
from bench.worker import small_step
from shared.embedded import PostgresServer


@DBOS.step()
async def dbos_step(n: int) -> dict[str, Any]:
    return await small_step(n)


@DBOS.workflow()
async def dbos_seven_steps(params: dict[str, Any]) -> dict[str, Any]:
    last: dict[str, Any] = {}
    for n in range(1, 8):
        last = await dbos_step(n)
    return last


@dataclass
class Dbos:
    """DBOS launched on one system database for the length of a session."""

    database_url: str
    name: str

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[One]:
        DBOS(
            config={
                "name": "howlerhire-bench",
                "system_database_url": self.database_url,
                "log_level": "WARNING",
            }
        )
        # Not in a thread: DBOS makes its own executor the loop's default one (and shuts
        # it down in destroy), so both are called on the loop; they take a moment.
        DBOS.launch()

        async def one() -> None:
            with SetWorkflowID(uuid.uuid4().hex):
                handle = await DBOS.start_workflow_async(dbos_seven_steps, {})
            await asyncio.wait_for(handle.get_result(), COMPLETION_TIMEOUT)

        try:
            yield one
        finally:
            DBOS.destroy()


@contextlib.contextmanager
def databases() -> Iterator[dict[str, str]]:
    """A SQLite file and an embedded PostgreSQL server for DBOS's system database."""
    root = Path(tempfile.mkdtemp(prefix="howlerhire-bench-dbos-"))
    pg = PostgresServer().start()
    try:
        yield {
            "sqlite": f"sqlite:///{root / 'dbos.sqlite'}",
            "postgres": pg.dsn("dbos_bench"),
        }
    finally:
        pg.stop()
        if pg.data_dir is not None:
            shutil.rmtree(pg.data_dir, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def peer_ratios(results: Results, engine: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in ("sqlite", "postgres"):
        for level in ("c1", "c50"):
            out[f"engine_over_dbos_{backend}_{level}"] = ratio(
                results, engine, f"dbos/{backend}", level
            )
    return {k: v for k, v in out.items() if v is not None}


def targets(ratios: dict[str, Any]) -> dict[str, Any]:
    """Issue 18: the engine (sync-always) >= 25x DBOS at 50 in flight, on each backend."""
    out: dict[str, Any] = {}
    for backend in ("postgres", "sqlite"):
        r = ratios.get(f"engine_over_dbos_{backend}_c50")
        if r:
            out[f"engine (sync-always) >= 25 x DBOS/{backend} wf/s at c50"] = {
                "value": r["median"],
                "met": r["median"] >= 25,
            }
    return out


async def main_async(args: Any) -> dict[str, Any]:
    rounds = args.rounds or (2 if args.quick else 3)
    duration = args.duration or (1.0 if args.quick else 5.0)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    # The engine on both fsync profiles: sync-always is the like-for-like durability of a
    # database that fsyncs its commits; sync-default is JetStream's default.
    with nats_servers(args.nats_url, ["sync-always", "sync-default"]) as urls, databases() as dbs:
        engines = [EngineInProcess(url, f"engine/{profile}") for profile, url in urls.items()]
        contenders: list[Any] = [*engines, *(Dbos(u, f"dbos/{b}") for b, u in dbs.items())]
        plan = Plan(contenders, {"c1": 1, "c50": 50}, duration, rounds)
        results = await run_plan(plan, progress)
    configs = summarise_all(results)
    engine = engines[0]
    ratios = peer_ratios(results, engine.name)
    for other in engines[1:]:
        profile = other.name.split("/", 1)[1]
        ratios.update({f"{k}/{profile}": v for k, v in peer_ratios(results, other.name).items()})
    print(table(configs))
    print(ratio_lines(ratios))
    return {
        "bench": "peer_dbos",
        "quick": args.quick,
        **configs["dbos/postgres"],
        "configs": configs,
        "ratios": ratios,
        "targets": targets(ratios),
        "env": environment(),
    }


def main() -> None:
    args = parser(__doc__.splitlines()[0]).parse_args()
    result = run_main(lambda: main_async(args), args.loop)
    result["env"]["loop"] = args.loop
    emit(result)


if __name__ == "__main__":
    main()
