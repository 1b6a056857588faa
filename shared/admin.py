"""Operator commands of `howlerhire` over the gateway (shared.client): list, restart,
dead letters, bulk actions. Output is JSON, one object per line.

The gateway is `WORKFLOWS_URL` (default http://127.0.0.1:8787) with the token in
`WORKFLOWS_AUTH_TOKEN` (or `var/auth-token`, as `howlerhire up` writes it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import msgspec

from shared.client import WorkflowsClient, WorkflowsClientError
from shared.wire import STATUSES

COMMANDS = ("list", "restart", "dlq", "bulk")
ACTIONS = ("cancel", "terminate", "restart", "replay")


def add_commands(sub: Any) -> None:
    """Register the operator subcommands on the `howlerhire` parser."""
    listing = sub.add_parser("list", help="list instances (by workflow, status, user)")
    listing.add_argument("--workflow")
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--user", help="userId in the instances' params")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--cursor")

    restart = sub.add_parser("restart", help="restart an instance, from the start or a step")
    restart.add_argument("workflow")
    restart.add_argument("instance_id")
    restart.add_argument("--from", dest="from_step", help="keep the steps before this one")

    dlq = sub.add_parser("dlq", help="dead letters: list, show, redrive, redrive-all, purge")
    dlq.add_argument("what", choices=("list", "show", "redrive", "redrive-all", "purge"))
    dlq.add_argument("seq", nargs="?", type=int, help="the letter (show, redrive, purge)")
    dlq.add_argument("--workflow")
    dlq.add_argument("--reason")

    bulk = sub.add_parser("bulk", help="cancel, terminate, restart or replay by filter")
    bulk.add_argument("action", choices=ACTIONS)
    bulk.add_argument("--workflow")
    bulk.add_argument("--status", choices=STATUSES)
    bulk.add_argument("--user")
    bulk.add_argument("--from", dest="from_step")
    bulk.add_argument("--rate", type=float, default=50.0, help="instances per second")
    bulk.add_argument("--key", help="run a filter that already ran once more")
    bulk.add_argument("--dry-run", action="store_true", help="only count the instances")


def _token() -> str:
    token = os.environ.get("WORKFLOWS_AUTH_TOKEN", "").strip()
    path = Path("var/auth-token")
    if not token and path.is_file():
        token = path.read_text().strip()
    if not token:
        raise SystemExit("WORKFLOWS_AUTH_TOKEN is not set (and var/auth-token is missing)")
    return token


def _print(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
    sys.stdout.flush()


async def _run(args: argparse.Namespace) -> int:
    url = os.environ.get("WORKFLOWS_URL", "http://127.0.0.1:8787")
    async with WorkflowsClient(url, _token()) as client:
        if args.command == "list":
            _print(
                await client.list_instances(
                    args.workflow, args.status, args.user, args.limit, args.cursor
                )
            )
        elif args.command == "restart":
            _print(await client.restart(args.workflow, args.instance_id, args.from_step))
        elif args.command == "dlq":
            if args.what in ("show", "redrive") and args.seq is None:
                raise SystemExit(f"dlq {args.what} needs the letter's seq")
            if args.what == "list":
                _print(await client.dead_letters(args.workflow, args.reason))
            elif args.what == "show":
                _print(await client.dead_letter(args.seq))
            elif args.what == "redrive":
                _print(await client.redrive(args.seq))
            elif args.what == "redrive-all":
                _print({"redriven": await client.redrive_all(args.workflow, args.reason)})
            else:
                purged = await client.purge_dead_letters(args.workflow, args.reason, args.seq)
                _print({"purged": purged})
        else:
            job = await client.bulk(
                args.action,
                workflow=args.workflow,
                status=args.status,
                user_id=args.user,
                from_step=args.from_step,
                rate=args.rate,
                dry_run=args.dry_run,
                key=args.key,
            )
            _print(job)
            while job.phase not in ("preview", "done"):
                await asyncio.sleep(1.0)
                job = await client.bulk_job(job.id)
                _print(job)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args))
    except WorkflowsClientError as exc:
        sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        return 1
