"""Log formats: JSON off a terminal with the run fields, plain lines on one, LOG_FORMAT checked."""

from __future__ import annotations

import io
import json
import logging

import pytest

from shared.errors import ConfigError
from shared.logs import RUN, STEP, LogSettings, chosen_format, configure, handler


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def emit(fmt: str, stream: io.StringIO, message: str, *args: object) -> str:
    logger = logging.getLogger(f"tests.logs.{fmt}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    out = handler("svc", fmt, stream)  # type: ignore[arg-type]
    logger.addHandler(out)
    try:
        logger.info(message, *args)
    finally:
        logger.removeHandler(out)
    return stream.getvalue()


def test_json_lines_carry_the_run_and_step_fields_only_inside_a_run() -> None:
    outside = json.loads(emit("json", io.StringIO(), "idle %d", 1))
    assert outside["message"] == "idle 1" and outside["service"] == "svc"
    assert outside["level"] == "info" and outside["ts"].endswith("Z")
    assert not {"workflow", "instance", "generation", "step", "attempt"} & outside.keys()
    run = RUN.set(("wf-a", "inst-1", 2))
    try:
        in_run = json.loads(emit("json", io.StringIO(), "between steps"))
        step = STEP.set(("fetch#1", 3))
        try:
            in_step = json.loads(emit("json", io.StringIO(), "in a step"))
        finally:
            STEP.reset(step)
    finally:
        RUN.reset(run)
    assert (in_run["workflow"], in_run["instance"], in_run["generation"]) == ("wf-a", "inst-1", 2)
    assert "step" not in in_run
    assert (in_step["step"], in_step["attempt"], in_step["workflow"]) == ("fetch#1", 3, "wf-a")


def test_text_lines_are_readable_and_name_the_run() -> None:
    run = RUN.set(("wf-a", "inst-1", 0))
    step = STEP.set(("send", 2))
    try:
        line = emit("text", io.StringIO(), "sending")
    finally:
        STEP.reset(step)
        RUN.reset(run)
    assert " INFO svc tests.logs.text: sending [wf-a/inst-1#0 step=send attempt=2]" in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_url_passwords_are_masked_in_both_formats(fmt: str) -> None:
    out = emit(fmt, io.StringIO(), "dsn %s", "postgresql://u:hunter2-secret@h/db")
    assert "hunter2-secret" not in out and "postgresql://u:***@h/db" in out


def test_a_traceback_goes_in_exc_masked() -> None:
    logger = logging.getLogger("tests.logs.exc")
    logger.propagate = False
    stream = io.StringIO()
    out = handler("svc", "json", stream)
    logger.addHandler(out)
    try:
        try:
            raise RuntimeError("nats://u:pw-in-traceback@host failed")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(out)
    line = json.loads(stream.getvalue())
    assert "RuntimeError" in line["exc"] and "pw-in-traceback" not in stream.getvalue()


def test_format_defaults_to_json_off_a_terminal_and_text_on_one() -> None:
    assert chosen_format(LogSettings(), io.StringIO()) == "json"
    assert chosen_format(LogSettings(), Tty()) == "text"
    assert chosen_format(LogSettings(log_format="json"), Tty()) == "json"
    assert chosen_format(LogSettings(log_format="text"), io.StringIO()) == "text"


def test_an_invalid_log_format_is_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        configure("svc", {"LOG_FORMAT": "yaml"})
