"""Where `howlerhire` takes the gateway and token from, how it reads times, and how it
names a failure — without a gateway."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer

from shared.cli import command_name, main
from shared.cli.render import duration
from shared.cli.session import (
    CliError,
    Target,
    explain,
    parse_json,
    parse_when,
    resolve_token,
    resolve_url,
)
from shared.client import AuthenticationError, NotFoundError, UnavailableError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_url_precedence(tmp_path: Path) -> None:
    """--url, then HOWLERHIRE_URL, the older names, var/gateway-url, then GATEWAY_PORT."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "gateway-url").write_text("http://127.0.0.1:9999/\n")
    env = {"HOWLERHIRE_DATA_DIR": str(var)}
    assert resolve_url("http://flag/", {**env, "HOWLERHIRE_URL": "http://env"}) == (
        "http://flag",
        "--url",
    )
    assert resolve_url(None, {**env, "HOWLERHIRE_URL": "http://env", "GATEWAY_URL": "x"}) == (
        "http://env",
        "HOWLERHIRE_URL",
    )
    assert resolve_url(None, {**env, "WORKFLOWS_URL": "http://old"})[1] == "WORKFLOWS_URL"
    assert resolve_url(None, env) == ("http://127.0.0.1:9999", str(var / "gateway-url"))
    assert (
        resolve_url(None, {"HOWLERHIRE_DATA_DIR": str(tmp_path / "none"), "GATEWAY_PORT": "81"})[0]
        == "http://127.0.0.1:81"
    )


def test_token_precedence_and_sources(tmp_path: Path) -> None:
    var = tmp_path / "var"
    var.mkdir()
    (var / "auth-token").write_text("from-var\n")
    file = tmp_path / "tok"
    file.write_text("from-file\n")
    env = {"HOWLERHIRE_DATA_DIR": str(var), "WORKFLOWS_AUTH_TOKEN": "from-env"}
    assert resolve_token("from-flag", file, env) == ("from-flag", "--token")
    assert resolve_token(None, file, env) == ("from-file", f"--token-file {file}")
    assert resolve_token(None, None, env) == ("from-env", "WORKFLOWS_AUTH_TOKEN")
    assert resolve_token(None, None, {"HOWLERHIRE_DATA_DIR": str(var)}) == (
        "from-var",
        str(var / "auth-token"),
    )
    with pytest.raises(CliError, match="no token: pass --token"):
        resolve_token(None, None, {"HOWLERHIRE_DATA_DIR": str(tmp_path / "none")})
    with pytest.raises(CliError, match=r"--token-file .*missing: no such file"):
        resolve_token(None, tmp_path / "missing", env)
    with pytest.raises(CliError, match="the token from WORKFLOWS_AUTH_TOKEN has characters") as bad:
        resolve_token(None, None, {"WORKFLOWS_AUTH_TOKEN": "two words"})
    assert "two words" not in str(bad.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("1w", NOW - timedelta(days=7)),
        ("2026-11-30", datetime(2026, 11, 30, tzinfo=UTC)),
        ("2026-11-30T09:00Z", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T09:00:00+01:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
    ],
)
def test_when(text: str, expected: datetime) -> None:
    assert parse_when(text, "--since", NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "15 minutes", "-2h", "2026-13-01"])
def test_when_refuses(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="neither an ISO 8601 time"):
        parse_when(text, "--since", NOW)


def test_json_arguments() -> None:
    assert parse_json('{"a": [1, 2]}', "params") == {"a": [1, 2]}
    with pytest.raises(CliError, match=r"^params: not valid JSON \(JSON is malformed"):
        parse_json("{a: 1}", "params")


def test_failures_are_named_with_their_source() -> None:
    target = Target("http://gw:1", "HOWLERHIRE_URL", "s3cret-token", "var/auth-token")
    assert explain(AuthenticationError("unauthorized", 401), target) == (
        "401 unauthorized: http://gw:1 refused the token from var/auth-token "
        "(the gateway's WORKFLOWS_AUTH_TOKEN is another)"
    )
    down = explain(UnavailableError("gateway unreachable: ConnectError"), target)
    assert down == (
        "gateway unreachable at http://gw:1 (URL from HOWLERHIRE_URL; ConnectError): is it running?"
    )
    assert explain(UnavailableError("NATS is down", 503), target) == (
        "503 unavailable: NATS is down (safe to retry)"
    )
    assert explain(NotFoundError("no instance x", 404, "instanceId"), target) == (
        "404 not found: no instance x (field instanceId)"
    )


def test_command_names_skip_root_options() -> None:
    assert command_name(["-o", "json", "--url", "http://x", "bulk", "restart", "-w", "a"]) == (
        "bulk restart"
    )
    assert command_name(["--token-file", "t", "list", "--status", "errored"]) == "list"
    assert command_name(["-o", "json"]) == "howlerhire"


def test_durations() -> None:
    assert [duration(v) for v in (None, 850, 2300, 245_000, 3_720_000)] == [
        "-",
        "850ms",
        "2.3s",
        "4m05s",
        "1h02m",
    ]


def test_usage_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--status"]) == 2
    assert capsys.readouterr().err == (
        "howlerhire list: Option '--status' requires an argument. (howlerhire list --help)\n"
    )
    assert main(["frob"]) == 2
    assert (
        capsys.readouterr().err == "howlerhire frob: No such command 'frob'. (howlerhire --help)\n"
    )
    assert main(["bulk", "restart", "--dry-run", "--yes", "--rate", "0"]) == 2
    assert "--rate" in capsys.readouterr().err


def test_erase_user_is_mounted_from_shared_erasure(monkeypatch: pytest.MonkeyPatch) -> None:
    """With shared/erasure.py present (issue 19), `erase-user USER_ID` runs its `command`
    and exits with its code."""
    import types

    import shared.cli as cli

    calls: list[str] = []
    fake = types.ModuleType("shared.erasure")
    fake.command = lambda user_id: calls.append(user_id) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared.erasure", fake)
    before = list(cli.app.registered_commands)
    monkeypatch.setattr(cli.app, "registered_commands", before)
    cli._mount_erasure()
    assert main(["erase-user", "user-42"]) == 7
    assert calls == ["user-42"]
