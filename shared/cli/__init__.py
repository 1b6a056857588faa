"""The `howlerhire` command: run the local stack, migrate, set up NATS, operate instances.

One typer app (rich for tables and progress). Gateway commands go through shared.client;
`shared/cli/session.py` says where the URL and token come from. Exit codes: 0 done,
1 refused/failed (or the watched run errored), 2 bad usage or set-up, 3 the watched run
was terminated, 4 `watch --timeout` passed first.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

# typer 0.29 carries its own copy of click; its exceptions are not re-exported.
from typer._click.exceptions import ClickException, NoArgsIsHelpError

from shared.cli import ops, runs
from shared.cli.session import CliError, Format, Session

app = typer.Typer(
    name="howlerhire",
    help=__doc__.splitlines()[0] if __doc__ else None,
    no_args_is_help=True,
    add_completion=False,
    # Pretty tracebacks print local variables: a token among them must never be shown.
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", help="the gateway (default: HOWLERHIRE_URL, var/gateway-url, :8787)"),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="the bearer token (default: WORKFLOWS_AUTH_TOKEN, var/auth-token)"
        ),
    ] = None,
    token_file: Annotated[
        Path | None, typer.Option("--token-file", help="read the bearer token from this file")
    ] = None,
    output: Annotated[
        Format, typer.Option("--output", "-o", help="text (default), json or jsonl")
    ] = Format.text,
) -> None:
    ctx.obj = Session(url_flag=url, token_flag=token, token_file=token_file, output=output)


# -- over the gateway ----------------------------------------------------------------------

app.command("send")(runs.send)
app.command("trigger")(runs.trigger)
app.command("status")(runs.status)
app.command("list")(runs.list_)
app.command("show")(runs.show)
app.command("watch")(runs.watch)
app.command("pause")(runs.pause)
app.command("resume")(runs.resume)
app.command("terminate")(runs.terminate)
app.command("restart")(runs.restart)
app.add_typer(runs.event_app, name="event")
app.add_typer(ops.dlq_app, name="dlq")
app.add_typer(ops.bulk_app, name="bulk")
app.command("schedules")(ops.schedules)


# -- on this machine -----------------------------------------------------------------------


@app.command("up")
def up(
    data_dir: Annotated[
        str, typer.Option("--data-dir", help="where NATS and PostgreSQL keep their data")
    ] = "var",
    demo: Annotated[
        bool, typer.Option("--demo", help="seed a demo user and print one command per workflow")
    ] = False,
) -> None:
    """Run the whole stack here (embedded NATS and PostgreSQL)."""
    from shared.stack import run_stack

    raise typer.Exit(run_stack(data_dir, demo=demo))


@app.command("migrate")
def migrate() -> None:
    """Create or upgrade the schema at DATABASE_URL."""
    from shared.db.migrate import main as migrate_main

    raise typer.Exit(migrate_main())


@app.command("health")
def health(
    service: Annotated[
        str | None,
        typer.Argument(
            help="gateway, resume, parsing, …; default: HOWLERHIRE_SERVICE, else the "
            "`python -m services.<name>` process running here"
        ),
    ] = None,
) -> None:
    """A container health check of one service."""
    from shared.health import main as health_main

    raise typer.Exit(health_main(service))


@app.command("nats-config")
def nats_config(
    out: Annotated[Path, typer.Option("--out", help="the file to write")] = Path(
        "deploy/nats-auth.conf"
    ),
    env_file: Annotated[
        Path, typer.Option("--env-file", help="NATS_PASSWORD_<USER>=… lines")
    ] = Path(".env"),
) -> None:
    """Write the NATS server's authorization block (one user per service).

    Passwords are read from (and, when missing, generated into) the env file; the block
    holds only their bcrypt hashes."""
    from shared.bus import Names
    from shared.natsauth import password_variable, write_config

    names = Names(os.environ.get("HOWLERHIRE_NAMESPACE") or "hh")
    idents, _ = write_config(out, env_file, names)
    print(f"wrote {out}: {len(idents)} NATS users, namespace {names.namespace!r}")
    for ident in idents:
        print(f"  {ident.user:<10} {password_variable(ident.user):<28} {ident.purpose}")
    print(f"passwords: {env_file} (kept if present, generated if missing)")


nats_app = typer.Typer(help="NATS administration", no_args_is_help=True)
app.add_typer(nats_app, name="nats")


@nats_app.command("setup")
def nats_setup() -> None:
    """As the admin user in NATS_URL: create or update every stream, bucket and consumer."""
    import nats.errors

    from shared.bus import _safe_url
    from shared.config import EngineSettings, load_settings
    from shared.errors import ConfigError
    from shared.natsauth import setup_topology

    try:
        settings = load_settings(EngineSettings, os.environ)
        made = asyncio.run(setup_topology(settings))
    except ConfigError as exc:
        print(f"howlerhire nats setup: configuration error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        where = ", ".join(_safe_url(url) for url in settings.nats_url.split(","))
        print(
            f"howlerhire nats setup: NATS at {where} failed: {type(exc).__name__} {exc}".rstrip(),
            file=sys.stderr,
        )
        raise typer.Exit(1) from None
    print("NATS topology ready: " + ", ".join(made))


# -- erase-user (issue 19) -----------------------------------------------------------------
# The logic lives in shared/erasure.py (the privacy work: `command(user_id) -> exit code`,
# over NATS with DATA_MASTER_KEYS); the command is here, mounted when that module is.
def _mount_erasure() -> None:
    try:
        erasure = importlib.import_module("shared.erasure")
    except ModuleNotFoundError as exc:
        if exc.name != "shared.erasure":
            raise
        return
    run: Callable[[str], int] = erasure.command

    @app.command("erase-user")
    def erase_user(
        user_id: Annotated[str, typer.Argument(metavar="USER_ID", help="the user's id")],
    ) -> None:
        """Erase one user's data: terminate their runs, shred their key, delete records.

        Over NATS (NATS_URL, DATA_MASTER_KEYS); prints the report as JSON."""
        raise typer.Exit(run(user_id))


_mount_erasure()


GROUPS = {"dlq", "bulk", "event", "nats"}
# The root options that take a value (to find the command's name after them).
_VALUED = {"--url", "--token", "--token-file", "--output", "-o"}


def main(argv: list[str] | None = None) -> int:
    """Run `howlerhire` with `argv` (default: sys.argv[1:]); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    try:
        # Not standalone: click's usage errors come back here, to be printed as one line
        # instead of a framed panel.
        result = app(args=args, prog_name="howlerhire", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except NoArgsIsHelpError as exc:
        exc.show()  # the help text itself
        return exc.exit_code
    except ClickException as exc:
        name = command_name(args)
        known = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
        helped = name if name.split()[0] in known else ""
        hint = f" (howlerhire {helped} --help)".replace("  ", " ")
        print(f"howlerhire {name}: {exc.format_message()}{hint}", file=sys.stderr, flush=True)
        return exc.exit_code
    except typer.Abort:
        print("howlerhire: aborted", file=sys.stderr, flush=True)
        return 1
    except CliError as exc:
        # Refused before any request (bad JSON, no --yes): one line, like the rest.
        print(f"howlerhire {command_name(args)}: {exc}", file=sys.stderr, flush=True)
        return exc.code
    return result if isinstance(result, int) else 0


def command_name(args: list[str]) -> str:
    """`bulk restart`, `list`, … from the arguments (the root's options skipped)."""
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _VALUED:
            skip = True
        elif not arg.startswith("-"):
            words.append(arg)
            if len(words) == 2 or words[0] not in GROUPS:
                break
    return " ".join(words) or "howlerhire"
