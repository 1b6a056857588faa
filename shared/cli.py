"""The `howlerhire` command: run the local stack, migrate, set up NATS, operate instances."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="howlerhire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole stack here (embedded NATS and PostgreSQL)")
    up.add_argument("--data-dir", default="var", help="where NATS and PostgreSQL keep their data")
    up.add_argument(
        "--demo", action="store_true", help="seed a demo user and print one command per workflow"
    )
    sub.add_parser("migrate", help="create or upgrade the schema at DATABASE_URL")
    from shared import admin

    admin.add_commands(sub)
    conf = sub.add_parser(
        "nats-config",
        help="write the NATS server's authorization block (one user per service)",
        description="Write the authorization block from shared/natsauth.py. Passwords are "
        "read from (and, when missing, generated into) the env file; the block holds only "
        "their bcrypt hashes.",
    )
    conf.add_argument("--out", default="deploy/nats-auth.conf", help="the file to write")
    conf.add_argument("--env-file", default=".env", help="NATS_PASSWORD_<USER>=… lines")
    nats = sub.add_parser("nats", help="NATS administration")
    nats_sub = nats.add_subparsers(dest="nats_command", required=True)
    nats_sub.add_parser(
        "setup",
        help="as the admin user in NATS_URL: create or update every stream, bucket and consumer",
    )
    health = sub.add_parser("health", help="a container health check of one service")
    health.add_argument(
        "service",
        nargs="?",
        help="gateway, resume, parsing, …; default: HOWLERHIRE_SERVICE, else the "
        "`python -m services.<name>` process running here",
    )
    for name, text in (("trigger", "start a workflow"), ("status", "an instance's status")):
        cmd = sub.add_parser(name, help=f"{text} through the gateway (GATEWAY_URL)")
        cmd.add_argument("workflow")
        if name == "trigger":
            cmd.add_argument("params", help="the parameters as JSON", nargs="?", default="{}")
            cmd.add_argument("--id", help="the instance id (default: a new one)")
        else:
            cmd.add_argument("id")
        cmd.add_argument("--token-file", default="var/auth-token")
    sub.add_parser(
        "schedules",
        help="list the cron jobs: expression, last slot fired, next fire "
        "(GATEWAY_URL, WORKFLOWS_AUTH_TOKEN)",
    )
    erase = sub.add_parser(
        "erase-user",
        help="erase one user's data: terminate their runs, shred their key, delete records "
        "(NATS_URL, DATA_MASTER_KEYS)",
    )
    erase.add_argument("user_id", metavar="USER_ID")
    args = parser.parse_args(argv)
    if args.command == "erase-user":
        from shared.erasure import command as erase_command

        return erase_command(args.user_id)
    if args.command in admin.COMMANDS:
        return admin.run(args)
    if args.command == "health":
        from shared.health import main as health_main

        return health_main(args.service)
    if args.command in ("trigger", "status"):
        return _call_gateway(args)
    if args.command == "up":
        from shared.stack import run_stack

        return run_stack(args.data_dir, demo=args.demo)
    if args.command == "migrate":
        from shared.db.migrate import main as migrate_main

        return migrate_main()
    if args.command == "nats-config":
        return _nats_config(Path(args.out), Path(args.env_file))
    if args.command == "nats" and args.nats_command == "setup":
        return _nats_setup()
    if args.command == "schedules":
        from shared.schedule_cli import main as schedules_main

        return schedules_main()
    return 2


def _call_gateway(args: argparse.Namespace) -> int:
    import json

    import msgspec

    from shared.client import WorkflowsClient, WorkflowsClientError

    url = os.environ.get("GATEWAY_URL") or "http://127.0.0.1:8787"
    token = os.environ.get("WORKFLOWS_AUTH_TOKEN", "")
    if not token and Path(args.token_file).exists():
        token = Path(args.token_file).read_text().strip()
    if not token:
        print("set WORKFLOWS_AUTH_TOKEN or pass --token-file", file=sys.stderr)
        return 2

    async def call() -> object:
        async with WorkflowsClient(url, token) as client:
            if args.command == "trigger":
                return await client.trigger(args.workflow, json.loads(args.params), args.id)
            return await client.get_status(args.workflow, args.id)

    try:
        result = asyncio.run(call())
    except json.JSONDecodeError as exc:
        print(f"params are not valid JSON: {exc}", file=sys.stderr)
        return 2
    except WorkflowsClientError as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    print(msgspec.json.encode(result).decode())
    return 0


def _nats_config(out: Path, env_file: Path) -> int:
    from shared.bus import Names
    from shared.natsauth import password_variable, write_config

    names = Names(os.environ.get("HOWLERHIRE_NAMESPACE") or "hh")
    idents, _ = write_config(out, env_file, names)
    print(f"wrote {out}: {len(idents)} NATS users, namespace {names.namespace!r}")
    for ident in idents:
        print(f"  {ident.user:<10} {password_variable(ident.user):<28} {ident.purpose}")
    print(f"passwords: {env_file} (kept if present, generated if missing)")
    return 0


def _nats_setup() -> int:
    from shared.config import EngineSettings, load_settings
    from shared.errors import ConfigError
    from shared.natsauth import setup_topology

    try:
        settings = load_settings(EngineSettings, os.environ)
        made = asyncio.run(setup_topology(settings))
    except ConfigError as exc:
        print(f"nats setup: configuration error: {exc}", file=sys.stderr)
        return 2
    print("NATS topology ready: " + ", ".join(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
