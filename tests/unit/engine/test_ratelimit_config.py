"""RATE_LIMITS parsing and the forms `ctx.step(..., limit=...)` accepts."""

from __future__ import annotations

import pytest

from shared.config import EngineSettings, load_settings
from shared.errors import ConfigError
from shared.workflow import Spend
from shared.workflow.ratelimit import Rate, configured_rates, parse_limits, spends_of


def test_rates_parse_with_every_unit_and_a_count():
    """The issue's example and the other units give the right amount per period."""
    rates = parse_limits(
        "resend=2/s, github=4500/h,anthropic_tokens=400000/min,slow=1/10s,daily=100/d"
    )
    assert rates == {
        "resend": Rate("resend", 2, 1),
        "github": Rate("github", 4500, 3600),
        "anthropic_tokens": Rate("anthropic_tokens", 400000, 60),
        "slow": Rate("slow", 1, 10),
        "daily": Rate("daily", 100, 86400),
    }
    assert rates["github"].per_second == pytest.approx(1.25)
    assert parse_limits("") == {}


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("resend", "invalid entry 'resend'"),
        ("resend=2", "invalid rate '2'"),
        ("resend=2/fortnight", "invalid rate"),
        ("resend=-2/s", "invalid rate"),
        ("resend=0/s", "above zero"),
        ("bad name=2/s", "invalid entry"),
        ("a=1/s,a=2/s", "twice"),
    ],
)
def test_bad_rate_limits_are_a_config_error_naming_the_variable(text, names):
    """Every malformed entry is refused at start, naming RATE_LIMITS and what is wrong."""
    with pytest.raises(ConfigError, match="RATE_LIMITS") as caught:
        load_settings(EngineSettings, {"RATE_LIMITS": text})
    assert names in str(caught.value)


def test_defaults_are_the_upstreams_limits_and_can_be_overridden():
    """Resend and GitHub are limited without configuration; RATE_LIMITS overrides them."""
    assert configured_rates("")["resend"] == Rate("resend", 2, 1)
    rates = configured_rates("resend=10/s,x=5/s")
    assert rates["resend"] == Rate("resend", 10, 1)
    assert rates["github"] == Rate("github", 4500, 3600)
    assert rates["x"] == Rate("x", 5, 1)


def test_step_limit_forms():
    """A name, (name, amount), a Spend or a list of them; anything else is a ValueError."""
    settle = len
    assert spends_of("resend") == (Spend("resend"),)
    assert spends_of(("anthropic_tokens", 2000)) == (Spend("anthropic_tokens", 2000.0),)
    both = spends_of(["anthropic_requests", Spend("anthropic_tokens", 10, settle=settle)])
    assert [s.limit for s in both] == ["anthropic_requests", "anthropic_tokens"]
    assert both[1].settle is settle
    with pytest.raises(ValueError, match="twice"):
        spends_of(["x", ("x", 2)])
    with pytest.raises(ValueError, match="limit= takes"):
        spends_of(("x", "2"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="invalid limit name"):
        Spend("no spaces")
    with pytest.raises(ValueError, match=">= 0"):
        Spend("x", -1)


SETTLE_SNIPPET = """
from dataclasses import dataclass
from shared.workflow import Context, Spend

@dataclass
class Usage:
    total: int

@dataclass
class Reply:
    text: str
    usage: Usage

async def ask(prompt: str) -> Reply:
    return Reply(prompt, Usage(3))

async def body(ctx: Context[None]) -> None:
    good = await ctx.step("a", ask, "hi", limit=Spend("t", 900, settle=lambda r: r.usage.total))
    reveal_type(good)
    await ctx.step("b", ask, "hi", limit=Spend("t", 900, settle=lambda r: r.nope))
    await ctx.step("c", ask, "hi", limit=["requests", ("t", 5)])
"""


def test_a_settle_hook_is_type_checked_against_the_step_result(tmp_path):
    """mypy types `settle`'s argument as the step function's return type."""
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    snippet = tmp_path / "settle_snippet.py"
    snippet.write_text(SETTLE_SNIPPET)
    config = str(REPO_ROOT / "pyproject.toml")
    flags = ["--strict", "--no-incremental", "--follow-imports=silent", "--config-file", config]
    # A process of its own: mypy in-process raises the interpreter's recursion limit.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *flags, str(snippet)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert 'Revealed type is "settle_snippet.Reply"' in out, out
    assert '"Reply" has no attribute "nope"' in out, out
    assert out.count("error:") == 1, out
