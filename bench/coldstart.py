"""A worker service's cold start, process start to consuming — `python -m bench.coldstart`.

What autoscaling on queue depth waits for: a new replica of `python -m services.<name>`
(resume, parsing, notify, discovery) from `Popen` until every one of its workflows'
durable consumers has a pull request waiting (`num_waiting >= 1`: the consumer is bound
and fetching; `ready`), measured from outside through the server's consumer info.
Beside it, in the same rounds: the first of its consumers fetching (`first_ready`), the
bare interpreter (`python -c pass`) and the import of the service's `__main__` alone, so
the figure splits into interpreter, imports, and connecting (settings, database pool,
NATS, topology and consumer checks).

The topology exists already (one replica ran before the rounds), as it does when a
replica is added. `pickup` is start to the first delivery of a message already waiting
on the service's first workflow (a start with invalid params, which goes to the dead
letters): the fetch loop's own first-pickup delay shows there.

Embedded NATS (default fsync) and PostgreSQL; services interleaved, order rotating each
round; medians and ranges. The last line of output is one JSON object.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors

from bench.harness import emit, environment, parser, progress
from shared.bus import Names, connect, publish
from shared.catalog import CATALOG
from shared.db.migrate import migrate
from shared.embedded import NatsServer, PostgresServer
from shared.workflow.model import RunMessage, encode

REPO = Path(__file__).resolve().parents[1]
NAMESPACE = "benchcold"
SERVICES = ("resume", "parsing", "notify", "discovery")
TARGET_S = 1.5
READY_LIMIT = 60.0


def workflows_of(service: str) -> list[str]:
    return [spec.id for spec in CATALOG if spec.service == service]


def service_env(nats_url: str, dsn: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": NAMESPACE,
        "DATABASE_URL": dsn,
        "DATABASE_POOL_MAX": "4",
        "DURABILITY": "any",
        "NATS_MONITOR_URL": "",
        "LOG_LEVEL": "WARNING",
        "UNSUBSCRIBE_SECRET": "bench-unsubscribe-secret-0123456789abcdef",
        "STORAGE_DIR": str(tmp / "storage"),
        "OUTBOX_DIR": str(tmp / "outbox"),
        "PARSING_EXTRACT_PROCESSES": "1",
        "DISCOVERY_SOURCES": "remoteok",
        "REMOTEOK_API_URL": "http://127.0.0.1:9/api",  # never called: nothing is run
        "PYTHONDONTWRITEBYTECODE": "0",
    }


def wall(command: list[str], env: dict[str, str]) -> float:
    """Seconds a short command takes, start to exit."""
    began = time.perf_counter()
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
    return time.perf_counter() - began


async def consuming(js: Any, names: Names, workflows: list[str]) -> int:
    """How many of the workflows' consumers have a pull request waiting."""
    count = 0
    for wf in workflows:
        try:
            info = await js.consumer_info(names.stream, names.consumer(wf))
        except nats.js.errors.NotFoundError:
            continue
        count += (info.num_waiting or 0) >= 1
    return count


async def delivered(js: Any, names: Names, workflow: str) -> int:
    info = await js.consumer_info(names.stream, names.consumer(workflow))
    return info.delivered.stream_seq or 0


async def one_start(
    js: Any, names: Names, service: str, env: dict[str, str], log: Path, pickup: bool
) -> dict[str, float]:
    """Start one replica; seconds until it is consuming (and, if `pickup`, until its first
    delivery of a waiting message); then stop it."""
    workflows = workflows_of(service)
    before = await delivered(js, names, workflows[0]) if pickup else 0
    if pickup:  # invalid params: the run is rejected to the dead letters, nothing executes
        bad = RunMessage(kind="start", instance_id=uuid.uuid4().hex, params={"bench": [1]})
        await publish(js, names.run_subject(workflows[0]), encode(bad), msg_id=None)
    with open(log, "ab") as out:
        began = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", f"services.{service}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    out_figs: dict[str, float] = {}
    try:
        while "ready_s" not in out_figs or (pickup and "pickup_s" not in out_figs):
            elapsed = time.perf_counter() - began
            if proc.poll() is not None:
                raise RuntimeError(f"{service} exited with {proc.returncode}; see {log}")
            if elapsed > READY_LIMIT:
                raise RuntimeError(f"{service} not consuming after {READY_LIMIT:.0f} s: {log}")
            if "ready_s" not in out_figs:
                fetching = await consuming(js, names, workflows)
                if fetching and "first_ready_s" not in out_figs:
                    out_figs["first_ready_s"] = elapsed
                if fetching == len(workflows):
                    out_figs["ready_s"] = elapsed
            if (
                pickup
                and "pickup_s" not in out_figs
                and await delivered(js, names, workflows[0]) > before
            ):
                out_figs["pickup_s"] = time.perf_counter() - began
            await asyncio.sleep(0.005)
    finally:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out_figs


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "median": round(statistics.median(values), 3),
        "range": [round(min(values), 3), round(max(values), 3)],
        "rounds": len(values),
    }


async def run(rounds: int, pickup: bool, tmp: Path, nats_url: str, dsn: str) -> dict[str, Any]:
    env = service_env(nats_url, dsn, tmp)
    nc = await connect(nats_url, "bench-coldstart")
    js = nc.jetstream()
    names = Names(NAMESPACE)
    figures: dict[str, dict[str, list[float]]] = {s: {} for s in SERVICES}
    try:
        for service in SERVICES:  # topology and consumers, as a running deployment has
            await one_start(js, names, service, env, tmp / f"{service}.log", pickup=False)
        for rnd in range(rounds):
            order = [SERVICES[(i + rnd) % len(SERVICES)] for i in range(len(SERVICES))]
            for service in order:
                figs = {
                    "python_s": wall([sys.executable, "-c", "pass"], env),
                    "import_s": wall(
                        [sys.executable, "-c", f"import services.{service}.__main__"], env
                    ),
                    **await one_start(js, names, service, env, tmp / f"{service}.log", pickup),
                }
                for key, value in figs.items():
                    figures[service].setdefault(key, []).append(value)
                progress(
                    f"round {rnd + 1}/{rounds} {service:<10} "
                    + " ".join(f"{k} {v:.3f}" for k, v in figs.items())
                )
    finally:
        await nc.drain()
    return {
        service: {key: summary(values) for key, values in figs.items()}
        for service, figs in figures.items()
    }


def table(result: dict[str, Any]) -> str:
    keys = ["python_s", "import_s", "first_ready_s", "ready_s", "pickup_s"]
    lines = [
        "| service | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for service, figs in result.items():
        cells = [
            f"{figs[k]['median']:.2f} ({figs[k]['range'][0]:.2f}..{figs[k]['range'][1]:.2f})"
            if k in figs
            else "-"
            for k in keys
        ]
        lines.append(f"| {service} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


async def main_async() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--no-pickup", action="store_true", help="measure consuming only")
    args = p.parse_args()
    rounds = args.rounds or (2 if args.quick else 5)
    tmp = Path(tempfile.mkdtemp(prefix="howlerhire-bench-cold-"))
    server = None if args.nats_url else NatsServer(tmp / "nats").start()
    pg = PostgresServer().start()
    try:
        dsn = pg.dsn()
        for _ in range(300):  # the server accepts connections a moment before it is ready
            try:
                await (await asyncpg.connect(dsn)).close()
                break
            except asyncpg.CannotConnectNowError:
                await asyncio.sleep(0.1)
        await migrate(dsn)
        url = args.nats_url or (server.url if server else "")
        load_before = round(os.getloadavg()[0], 2)
        result = await run(rounds, not args.no_pickup, tmp, url, dsn)
    finally:
        pg.stop()
        if server is not None:
            server.stop()
    print(table(result))
    targets = {
        f"{service} consuming <= {TARGET_S} s": {
            "value": figs["ready_s"]["median"],
            "met": figs["ready_s"]["median"] <= TARGET_S,
        }
        for service, figs in result.items()
    }
    env = environment()
    env["load_avg_1m_before"] = load_before
    emit(
        {
            "bench": "coldstart",
            "quick": args.quick,
            "services": result,
            "targets": targets,
            "env": env,
        }
    )
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
