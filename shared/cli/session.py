"""What every gateway command shares: where the gateway is, whose token, the output format,
and turning a failed request into one line on stderr and an exit code.

The gateway URL comes from `--url`, else `HOWLERHIRE_URL` (`WORKFLOWS_URL` and
`GATEWAY_URL`, the older names, still count), else `<data dir>/gateway-url` (written by
`howlerhire up`), else `http://127.0.0.1:$GATEWAY_PORT` (8787). The token comes from
`--token`, else `--token-file`, else `WORKFLOWS_AUTH_TOKEN`, else `<data dir>/auth-token`.
The data dir is `HOWLERHIRE_DATA_DIR`, else `var` (what `howlerhire up` uses).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import typer
from rich.console import Console

from shared.client import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RequestRejectedError,
    UnavailableError,
    WorkflowsClient,
    WorkflowsClientError,
)
from shared.errors import AppError

#: Exit codes: 0 done; 1 the gateway refused or failed it (or the run errored); 2 bad
#: usage or set-up; 3 the run was terminated; 4 `watch --timeout` passed first.
EXIT_FAILED, EXIT_USAGE, EXIT_TERMINATED, EXIT_TIMEOUT = 1, 2, 3, 4

# A bearer token is one HTTP header value: visible ASCII, no spaces.
_TOKEN = re.compile(r"^[\x21-\x7e]+$")
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class Format(StrEnum):
    """`-o`: tables for people, one JSON document, or one JSON object per line."""

    text = "text"
    json = "json"
    jsonl = "jsonl"


class CliError(AppError):
    """A command cannot go on: printed as one line, exits with `code`."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """The gateway to talk to and the token, each with where it came from (never the token
    itself in a message)."""

    url: str
    url_source: str
    token: str
    token_source: str


def data_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("HOWLERHIRE_DATA_DIR") or "var")


def resolve_url(flag: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """The gateway's base URL and its source, in the order of the module docstring."""
    if flag:
        return flag.rstrip("/"), "--url"
    for name in ("HOWLERHIRE_URL", "WORKFLOWS_URL", "GATEWAY_URL"):
        if value := environ.get(name, "").strip():
            return value.rstrip("/"), name
    written = data_dir(environ) / "gateway-url"
    if written.is_file() and (value := written.read_text().strip()):
        return value.rstrip("/"), str(written)
    port = environ.get("GATEWAY_PORT", "").strip() or "8787"
    return f"http://127.0.0.1:{port}", "the default"


def resolve_token(
    flag: str | None, flag_file: Path | None, environ: Mapping[str, str]
) -> tuple[str, str]:
    """The bearer token and its source; a CliError naming every place looked at if none."""
    candidates: list[tuple[str, Callable[[], str | None]]] = [
        ("--token", lambda: flag),
    ]
    if flag_file is not None:
        candidates.append((f"--token-file {flag_file}", lambda: _read(flag_file, required=True)))
    candidates.append(("WORKFLOWS_AUTH_TOKEN", lambda: environ.get("WORKFLOWS_AUTH_TOKEN")))
    stored = data_dir(environ) / "auth-token"
    candidates.append((str(stored), lambda: _read(stored, required=False)))
    for source, read in candidates:
        value = (read() or "").strip()
        if value:
            if not _TOKEN.match(value):
                raise CliError(f"the token from {source} has characters a bearer token cannot have")
            return value, source
    raise CliError(
        f"no token: pass --token or --token-file, set WORKFLOWS_AUTH_TOKEN, or run "
        f"`howlerhire up` (which writes {stored})"
    )


def _read(path: Path, *, required: bool) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        if required:
            raise CliError(f"--token-file {path}: no such file") from None
        return None
    except OSError as exc:
        raise CliError(f"cannot read the token file {path}: {exc.strerror}") from None


def parse_when(value: str | None, option: str, now: datetime | None = None) -> datetime | None:
    """`--since`/`--until`: an ISO 8601 time (UTC unless it says otherwise) or an age such
    as `90s`, `15m`, `2h`, `3d`, `1w` (that long ago)."""
    if value is None or value == "":
        return None
    text = value.strip()
    if match := _RELATIVE.match(text):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time (2026-12-01T09:00Z) nor an age (15m, 2h, 3d)",
            param_hint=option,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def parse_json(value: str | None, what: str) -> Any:
    """A JSON argument; a CliError naming `what` and the position when it is not JSON."""
    if value is None:
        return None
    try:
        return msgspec.json.decode(value.encode())
    except msgspec.DecodeError as exc:
        raise CliError(f"{what}: not valid JSON ({exc})") from None


def _console(stream: Any) -> Console:
    tty = stream.isatty()
    # Off a terminal nothing wraps at 80 columns: a pipe gets whole rows (rich reads
    # NO_COLOR and FORCE_COLOR itself).
    return Console(
        file=stream,
        width=None if tty else int(os.environ.get("COLUMNS") or 0) or 4000,
        highlight=False,
        soft_wrap=not tty,
    )


@dataclass
class Session:
    """The options before the command, shared by every command of one invocation."""

    url_flag: str | None = None
    token_flag: str | None = None
    token_file: Path | None = None
    output: Format = Format.text
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: Console = field(default_factory=lambda: _console(sys.stdout))
    err: Console = field(default_factory=lambda: _console(sys.stderr))

    def format(self, override: Format | None) -> Format:
        return override or self.output

    def target(self, token_file: Path | None = None) -> Target:
        url, url_source = resolve_url(self.url_flag, self.environ)
        token, token_source = resolve_token(
            self.token_flag, token_file or self.token_file, self.environ
        )
        return Target(url, url_source, token, token_source)

    def emit(self, value: Any) -> None:
        """One JSON document (a msgspec Struct encodes with the gateway's camelCase names)."""
        sys.stdout.write(msgspec.json.encode(value).decode() + "\n")
        sys.stdout.flush()

    def emit_lines(self, values: Iterable[Any]) -> None:
        for value in values:
            self.emit(value)

    def show(self, output: Format | None, value: Any, text: Any) -> None:
        """One value: as JSON for -o json/jsonl, else `text` (a string or a rich table)."""
        if self.format(output) is not Format.text:
            self.emit(value)
        else:
            self.out.print(text)

    def page(
        self,
        output: Format | None,
        page: Any,
        rows: list[Any],
        table: Callable[[list[Any]], Any],
        empty: str,
        next_cursor: str | None,
    ) -> None:
        """A listing: the page as JSON, its rows as JSON lines, or a table with a line
        saying how to page on."""
        fmt = self.format(output)
        if fmt is Format.json:
            self.emit(page)
        elif fmt is Format.jsonl:
            self.emit_lines(rows)
        else:
            self.out.print(table(rows) if rows else empty)
            if next_cursor:
                self.out.print(f"more: --cursor {next_cursor}", style="dim")

    def call(self, command: str, work: Callable[[WorkflowsClient, Target], Awaitable[int]]) -> None:
        """Run `work` with a client for the target; exit with its code, or print why it
        failed as one line and exit non-zero."""
        try:
            target = self.target()
            code = asyncio.run(_with_client(target, work))
        except CliError as exc:
            self.fail(command, str(exc), exc.code)
        except WorkflowsClientError as exc:
            self.fail(command, explain(exc, target), EXIT_FAILED)
        except KeyboardInterrupt:
            self.fail(command, "interrupted", 130)
        if code:
            raise typer.Exit(code)

    def fail(self, command: str, message: str, code: int) -> NoReturn:
        # Through `print` rather than rich: one plain line, whatever the terminal.
        print(f"howlerhire {command}: {message}", file=sys.stderr, flush=True)
        raise typer.Exit(code)


async def _with_client(
    target: Target, work: Callable[[WorkflowsClient, Target], Awaitable[int]]
) -> int:
    # One retry of a lost connection: a command a person typed should fail fast.
    async with WorkflowsClient(target.url, target.token, timeout=30.0, retries=1) as client:
        return await work(client, target)


def explain(exc: WorkflowsClientError, target: Target) -> str:
    """The gateway's refusal as one line: the status, what it said, and where to look."""
    message = str(exc)
    if exc.field:
        message += f" (field {exc.field})"
    if isinstance(exc, AuthenticationError):
        return (
            f"401 unauthorized: {target.url} refused the token from {target.token_source} "
            f"(the gateway's WORKFLOWS_AUTH_TOKEN is another)"
        )
    if isinstance(exc, UnavailableError):
        if exc.status == 0:
            return (
                f"gateway unreachable at {target.url} (URL from {target.url_source}; "
                f"{message.removeprefix('gateway unreachable: ')}): is it running?"
            )
        return f"{exc.status} unavailable: {message} (safe to retry)"
    if isinstance(exc, NotFoundError):
        return f"404 not found: {message}"
    if isinstance(exc, ConflictError):
        return f"409 conflict: {message}"
    if isinstance(exc, RequestRejectedError):
        return f"{exc.status} rejected: {message}"
    return f"{exc.status or 'error'}: {message}"
