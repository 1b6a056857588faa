"""Which upstreams `up` points at the offline stand-in, and how its table says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.stack import _adapters, _standin
from shared.standin.server import BOARD_VARIABLES

ALL = {"GITHUB_API_URL", *BOARD_VARIABLES.values()}


def test_nothing_configured_means_every_upstream_is_the_standin(tmp_path: Path):
    env = {"PATH": "/usr/bin", "DATABASE_URL": "postgresql://u:pw@db/x", "GITHUB_TOKEN": ""}
    env = {k: v for k, v in env.items() if v}  # up drops empty variables first
    standin = _standin(env, False, tmp_path)
    assert standin is not None
    assert set(standin.variables) == ALL
    assert env["GITHUB_API_URL"] == f"{standin.url}/github"
    assert env["WWR_FEED_URLS"].startswith(standin.url + "/weworkremotely/")
    # Least privilege: no database URL or secrets reach it; it names its stack's folder.
    assert "DATABASE_URL" not in standin.child.env
    assert standin.child.env["HOWLERHIRE_DATA_DIR"] == str(tmp_path)
    assert standin.child.module == "shared.standin"
    rows = dict(_adapters(env, standin))
    assert rows["GitHub"].startswith(f"offline stand-in: {standin.url}/github")
    assert rows["job boards"].startswith(f"offline stand-in: {standin.url}")
    assert "remoteok" in rows["job boards"] and "himalayas" in rows["job boards"]


def test_the_users_own_urls_and_token_are_kept(tmp_path: Path):
    env = {"REMOTEOK_API_URL": "https://remoteok.com/api", "GITHUB_TOKEN": "ghp_x"}
    standin = _standin(env, False, tmp_path)
    assert standin is not None
    assert set(standin.variables) == ALL - {"REMOTEOK_API_URL", "GITHUB_API_URL"}
    assert env["REMOTEOK_API_URL"] == "https://remoteok.com/api"
    assert "GITHUB_API_URL" not in env
    rows = dict(_adapters(env, standin))
    assert rows["GitHub"] == "real (https://api.github.com with a token)"
    assert "ghp_x" not in " ".join(rows.values())


def test_demo_uses_the_standin_for_github_even_with_a_token(tmp_path: Path):
    env = {"GITHUB_TOKEN": "ghp_x"}
    standin = _standin(env, True, tmp_path)
    assert standin is not None and "GITHUB_API_URL" in standin.variables


def test_every_upstream_configured_or_switched_off_starts_no_standin(tmp_path: Path):
    configured = {var: "https://example.com/x" for var in ALL}
    assert _standin(dict(configured), True, tmp_path) is None
    env = {"HOWLERHIRE_STANDIN": "off"}
    assert _standin(env, True, tmp_path) is None
    assert env == {"HOWLERHIRE_STANDIN": "off"}
    assert dict(_adapters(env, None))["job boards"].startswith("real")


def test_a_bad_port_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RuntimeError, match="HOWLERHIRE_STANDIN_PORT"):
        _standin({"HOWLERHIRE_STANDIN_PORT": "eighty"}, True, tmp_path)
