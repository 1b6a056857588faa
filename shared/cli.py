"""The `howlerhire` command: run the local stack, migrate the database."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="howlerhire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the whole stack here (embedded NATS and PostgreSQL)")
    up.add_argument("--data-dir", default="var", help="where NATS and PostgreSQL keep their data")
    sub.add_parser("migrate", help="create or upgrade the schema at DATABASE_URL")
    sub.add_parser(
        "schedules",
        help="list the cron jobs: expression, last slot fired, next fire "
        "(GATEWAY_URL, WORKFLOWS_AUTH_TOKEN)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        from shared.stack import run_stack

        return run_stack(args.data_dir)
    if args.command == "migrate":
        from shared.db.migrate import main as migrate_main

        return migrate_main()
    if args.command == "schedules":
        from shared.schedule_cli import main as schedules_main

        return schedules_main()
    return 2


if __name__ == "__main__":
    sys.exit(main())
