"""Daily discovery fan-out at scale: `python -m bench.discovery [--users 10000]`.

Seeds N active users in an embedded PostgreSQL, runs two discovery worker processes
(`python -m services.discovery`) on an embedded NATS (`sync_interval: always`) with
three local job boards serving their recordings, fires `cron/daily-discovery` once, and
measures:

- how long until all N `job-discovery` runs exist (started), and until all complete;
- the requests each fake board received (the shared snapshot: 1 each is the target);
- redeliveries (consumer `num_redelivered`) and dead letters (a redelivery storm shows
  there), and each worker's peak RSS.

`--quick` runs 300 users (under a minute on a loaded 2-core box). The last line of output
is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats.js.errors

from bench.harness import emit, environment, parser, peak_rss_mb, progress
from shared.bus import Names, connect
from shared.catalog import routes
from shared.db.migrate import migrate
from shared.embedded import NatsServer, PostgresServer
from shared.workflow import EventEnvelope, Instances
from tests.support.fakes import FAKES, RunningFake

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
NAMESPACE = "benchdisc"
SOURCES = "remoteok,remotive,greenhouse:stripe"


async def seed(dsn: str, users: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = [
            (uuid.uuid4(), json.dumps(["engineer"]), json.dumps(["Python", "Go", "SQL"]))
            for _ in range(users)
        ]
        await conn.executemany(
            "INSERT INTO profiles (user_id, preferred_roles, skills) "
            "VALUES ($1, $2::jsonb, $3::jsonb)",
            rows,
        )
    finally:
        await conn.close()


async def started_count(js: Any, names: Names) -> int:
    info = await js.stream_info(
        f"KV_{names.state_bucket}", subjects_filter=f"$KV.{names.state_bucket}.job-discovery.>"
    )
    return len(info.state.subjects or {})


async def measure(
    nats_url: str, dsn: str, users: int, workers: int, tmp: Path, profile: str | None = None
) -> dict[str, Any]:
    boards = {
        k: RunningFake(FAKES[k](FIXTURES)).start() for k in ("remoteok", "remotive", "greenhouse")
    }
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": NAMESPACE,
        "DATABASE_URL": dsn,
        "DATABASE_POOL_MAX": "10",
        "LOG_LEVEL": "WARNING",
        "DISCOVERY_SOURCES": SOURCES,
        "REMOTEOK_API_URL": f"{boards['remoteok'].url}/api",
        "REMOTIVE_API_URL": f"{boards['remotive'].url}/api/remote-jobs",
        "GREENHOUSE_API_URL": boards["greenhouse"].url,
        "WORKER_CONCURRENCY": "32",
    }
    command = [sys.executable, "-m", "services.discovery"]
    if profile:  # the first worker under pyinstrument (the bench extra)
        command = [sys.executable, "-m", "pyinstrument", "-o", profile, "-m", "services.discovery"]
    procs = [
        subprocess.Popen(
            command if n == 0 else [sys.executable, "-m", "services.discovery"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=open(tmp / f"worker{n}.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        for n in range(workers)
    ]
    nc = await connect(nats_url, "bench-discovery")
    js = nc.jetstream()
    names = Names(NAMESPACE)
    try:
        # Both workers have created their consumers once the job-discovery one exists.
        for _ in range(600):
            try:
                await js.consumer_info(names.stream, names.consumer("job-discovery"))
                await js.consumer_info(names.stream, names.consumer("daily-discovery"))
                break
            except nats.js.errors.NotFoundError:  # not there yet
                await asyncio.sleep(0.1)
        instances = Instances(nc, names, routes())
        fired = time.perf_counter()
        [(_, [daily])] = await instances.send(
            [EventEnvelope(name="cron/daily-discovery", data={}, id=f"bench-{uuid.uuid4().hex}")]
        )
        all_started = None
        while True:
            count = await started_count(js, names)
            if all_started is None and count >= users:
                all_started = time.perf_counter() - fired
                progress(f"all {users} runs started after {all_started:.1f} s")
            info = await js.consumer_info(names.stream, names.consumer("job-discovery"))
            if count >= users and info.num_pending == 0 and info.num_ack_pending == 0:
                break
            if time.perf_counter() - fired > 1800:
                raise RuntimeError(f"not done after 30 min: {count} started, {info}")
            await asyncio.sleep(0.5)
        all_done = time.perf_counter() - fired
        state = await instances.get("daily-discovery", daily.instance_id)
        job_info = await js.consumer_info(names.stream, names.consumer("job-discovery"))
        dlq = await js.stream_info(names.dlq_stream)
        conn = await asyncpg.connect(dsn)
        try:
            with_jobs = await conn.fetchval("SELECT count(DISTINCT user_id) FROM jobs")
            rows = await conn.fetchval("SELECT count(*) FROM jobs")
        finally:
            await conn.close()
        return {
            "users": users,
            "workers": workers,
            "fan_out_status": state.status,
            "fan_out_output": state.output,
            "all_started_s": round(all_started or 0.0, 1),
            "all_complete_s": round(all_done, 1),
            "runs_per_s": round(users / all_done, 1),
            "board_requests": {k: b.control.stats()["requests"] for k, b in boards.items()},
            "redelivered": job_info.num_redelivered,
            "dead_letters": dlq.state.messages,
            "users_with_jobs": with_jobs,
            "jobs_saved": rows,
            "worker_peak_rss_mb": [peak_rss_mb(p.pid) for p in procs],
        }
    finally:
        await nc.drain()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for board in boards.values():
            board.stop()


async def main() -> None:
    args_parser = parser("daily-discovery fan-out to N users")
    args_parser.add_argument("--users", type=int, help="active users (default 10000)")
    args_parser.add_argument("--workers", type=int, default=2, help="discovery processes")
    args_parser.add_argument("--profile", help="write a pyinstrument profile of worker 1 here")
    args = args_parser.parse_args()
    users = args.users or (300 if args.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="howlerhire-bench-disc-"))
    nats = NatsServer(tmp / "nats", sync_always=True).start()
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
        await seed(dsn, users)
        progress(f"seeded {users} users; starting {args.workers} workers")
        result = await measure(
            args.nats_url or nats.url, dsn, users, args.workers, tmp, args.profile
        )
    finally:
        pg.stop()
        nats.stop()
    emit({"discovery": result, "env": environment(), "logs": str(tmp)})
    if result["fan_out_status"] == "complete":
        shutil.rmtree(tmp / "nats", ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
