"""The weekly summary at scale: 10,000 users with activity, Resend's 2 requests/s.

Two measurements on the embedded PostgreSQL and nats-server:

1. statistics: every recipient's figures for the week, in pages of 100 with one
   aggregate query per page (what `prepare-<n>` runs), against one query per user;
2. the whole run: `python -m services.notify` as a process, the workflow started through
   the engine's `Instances.trigger` (the gateway's path), emails to the Resend fake that
   answers 429 beyond 2 requests/s — time to the last email, batch requests, 429s, the
   most requests accepted in one second, and emails per recipient.

    .venv/bin/python -m bench.notify            # 10,000 users
    .venv/bin/python -m bench.notify --quick    # 2,000 users
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from shared.bus import Names, connect, ensure_topology
from shared.catalog import consumer_specs, routes
from shared.config import EngineSettings
from shared.db.migrate import migrate
from shared.db.postgres import PostgresRepository
from shared.embedded import NatsServer, PostgresServer
from shared.weeks import previous_week
from shared.workflow import Instances, ensure_consumers
from tests.support.fakes import ResendFake, RunningFake
from tests.support.procs import spawn

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


async def seed(dsn: str, users: int) -> None:
    """`users` profiles, each with 1-3 jobs discovered last week and some applications."""
    start = previous_week(datetime.now(UTC)).start
    ids = [uuid.uuid4() for _ in range(users)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "profiles",
            records=[(u, f"user{i:05d}@example.com", f"User {i}") for i, u in enumerate(ids)],
            columns=["user_id", "email", "full_name"],
        )
        jobs = [
            (
                u,
                f"Engineer {k}",
                "Acme",
                "remoteok",
                f"https://jobs.example.com/{u}/{k}",
                start + timedelta(hours=i % 150, minutes=k),
                40 + (i * 7 + k) % 60,
            )
            for i, u in enumerate(ids)
            for k in range(1 + i % 3)
        ]
        await conn.copy_records_to_table(
            "jobs",
            records=jobs,
            columns=[
                "user_id",
                "title",
                "company",
                "source",
                "source_url",
                "discovered_at",
                "match_score",
            ],
        )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def measure_stats(dsn: str, per_user_sample: int) -> dict[str, float]:
    repo = await PostgresRepository.open(dsn, max_size=2)
    window = previous_week(datetime.now(UTC))
    try:
        started = time.perf_counter()
        after = None
        users = 0
        queries = 0
        while True:
            page = await repo.list_weekly_summary_recipients(after=after, limit=100)
            if not page:
                break
            await repo.weekly_stats_for([r.user_id for r in page], window.start, window.end)
            queries += 1
            users += len(page)
            after = page[-1].user_id
        chunked = time.perf_counter() - started
        sample = await repo.list_weekly_summary_recipients(limit=per_user_sample)
        started = time.perf_counter()
        for recipient in sample:
            await repo.weekly_stats(recipient.user_id, window.start, window.end)
        per_user = (time.perf_counter() - started) / max(1, len(sample)) * users
    finally:
        await repo.aclose()
    return {
        "users": users,
        "aggregate_queries": queries,
        "chunked_s": round(chunked, 2),
        "one_query_per_user_s_projected": round(per_user, 2),
    }


async def measure_run(
    nats_url: str, dsn: str, namespace: str, users: int, tmp: Path
) -> dict[str, Any]:
    fake = RunningFake(ResendFake(FIXTURES, rate_limit=2)).start()
    env = {
        "NATS_URL": nats_url,
        "HOWLERHIRE_NAMESPACE": namespace,
        "DATABASE_URL": dsn,
        "RESEND_API_KEY": "re_bench",
        "RESEND_API_URL": fake.url,
        "UNSUBSCRIBE_SECRET": "bench-unsubscribe-secret-0123456789",
        "APP_URL": "https://app.howlerhire.test",
        "LOG_LEVEL": "WARNING",
        "DURABILITY": "any",
    }
    settings = EngineSettings(howlerhire_namespace=namespace)
    nc = await connect(nats_url, "bench-notify")
    proc = spawn("services.notify", env, tmp / "notify.log")
    try:
        names = Names(namespace)
        js = nc.jetstream()
        await ensure_topology(js, names)
        await ensure_consumers(js, names, consumer_specs(), settings, create_only=True)
        instances = Instances(nc, names, routes())
        started = time.monotonic()
        state, _ = await instances.trigger("weekly-summary", {}, "bench-weekly")
        while state.status not in ("complete", "errored", "terminated"):
            await asyncio.sleep(0.5)
            state = await instances.get("weekly-summary", "bench-weekly")
            if not proc.alive():
                raise RuntimeError(f"notify died:\n{proc.output()[-3000:]}")
        elapsed = time.monotonic() - started
        stats = fake.control.stats()
        per_recipient = set(stats["by_recipient"].values())
        return {
            "status": state.status,
            "output": state.output,
            "seconds": round(elapsed, 1),
            "batch_requests": stats["by_path"].get("/emails/batch", 0),
            "rate_limited_429": stats["rate_limited"],
            "max_requests_in_1s": stats["max_per_second"],
            "emails_delivered": stats["deliveries"],
            "recipients": len(stats["by_recipient"]),
            "emails_per_recipient": sorted(per_recipient),
            "within_2_minutes": elapsed <= 120 and stats["deliveries"] == users,
        }
    finally:
        proc.terminate()
        await nc.drain()
        fake.stop()


async def wait_ready(dsn: str, timeout: float = 60.0) -> None:
    """The embedded server accepts TCP before it accepts sessions on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn)
        except (asyncpg.CannotConnectNowError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        else:
            await conn.close()
            return


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    nats = NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
    postgres = PostgresServer(tmp / "pg").start()
    try:
        dsn = postgres.dsn()
        await wait_ready(dsn)
        await migrate(dsn)
        started = time.perf_counter()
        await seed(dsn, args.users)
        seeded = time.perf_counter() - started
        stats = await measure_stats(dsn, min(500, args.users))
        run = await measure_run(nats.url, dsn, "bench" + uuid.uuid4().hex[:6], args.users, tmp)
        return {"users": args.users, "seed_s": round(seeded, 1), "stats": stats, "run": run}
    finally:
        postgres.stop()
        nats.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.notify", description=__doc__)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="2,000 users")
    args = parser.parse_args()
    if args.quick:
        args.users = 2_000
    result = asyncio.run(main_async(args))
    print(json.dumps(result))
    return 0 if result["run"]["status"] == "complete" else 1


if __name__ == "__main__":
    sys.exit(main())
