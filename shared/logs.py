"""Log lines of every service: JSON off a terminal, plain on one; run fields from contextvars.

`LOG_FORMAT=json` writes one JSON object a line (`ts`, `level`, `service`, `logger`,
`message`, and inside a run `workflow`, `instance`, `generation`, `step`, `attempt`);
`LOG_FORMAT=text` a readable line with the same run fields appended. Unset: JSON when
stderr is not a terminal (a container, a log shipper), text when it is.

The engine sets `RUN` around a delivery and `STEP` around a step attempt (contextvars, so
concurrent runs and `asyncio.gather`ed steps each keep their own). A filter on the
handler copies them onto each record when it is emitted. Every message goes through
`shared.config.mask` (passwords inside URLs and DSNs), whatever the format.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Mapping
from typing import Literal

import msgspec

from shared.config import Settings, load_settings, mask

# (workflow, instance, generation) of the delivery being executed.
RUN: contextvars.ContextVar[tuple[str, str, int] | None] = contextvars.ContextVar(
    "howlerhire_run", default=None
)
# (step, attempt) of the step attempt being executed.
STEP: contextvars.ContextVar[tuple[str, int] | None] = contextvars.ContextVar(
    "howlerhire_step", default=None
)

RUN_FIELDS = ("workflow", "instance", "generation", "step", "attempt")


class LogSettings(Settings, frozen=True, kw_only=True):
    """How a service logs."""

    # "json", "text", or empty: json when stderr is not a terminal.
    log_format: Literal["", "json", "text"] = ""
    # A logging level name, any case.
    log_level: str = "INFO"


class RunFields(logging.Filter):
    """Copies the service name and the current run's fields onto each record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        run = RUN.get()
        if run is not None:
            record.workflow, record.instance, record.generation = run
            step = STEP.get()
            if step is not None:
                record.step, record.attempt = step
        return True


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object a line; a traceback goes in `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "message": mask(record.getMessage()),
        }
        for name in RUN_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exc"] = mask(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = mask(record.exc_text)
        return msgspec.json.encode(line).decode()


class TextFormatter(logging.Formatter):
    """`time level service logger: message [workflow/instance#gen step attempt]`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(service)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "service"):
            record.service = ""
        text = mask(super().format(record))
        workflow = getattr(record, "workflow", None)
        if workflow is None:
            return text
        fields = record.__dict__
        where = f"{workflow}/{fields.get('instance')}#{fields.get('generation')}"
        step = fields.get("step")
        if step is not None:
            where += f" step={step} attempt={fields.get('attempt')}"
        first, sep, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [{where}]{sep}{rest}"


def handler(service: str, fmt: Literal["json", "text"], stream: object = None) -> logging.Handler:
    """A stderr handler writing `fmt` with the run fields of `service`."""
    out = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    out.addFilter(RunFields(service))
    out.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return out


def chosen_format(settings: LogSettings, stream: object = None) -> Literal["json", "text"]:
    if settings.log_format:
        return settings.log_format
    isatty = getattr(stream or sys.stderr, "isatty", None)
    return "text" if isatty is not None and isatty() else "json"


def configure(service: str, environ: Mapping[str, str]) -> None:
    """Replace the root logger's handlers with one for `service` (LOG_FORMAT, LOG_LEVEL).

    Raises ConfigError for an invalid LOG_FORMAT; an unknown LOG_LEVEL falls back to INFO
    with a warning (a typo must not stop a service).
    """
    settings = load_settings(LogSettings, environ)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(service, chosen_format(settings)))
    level = settings.log_level.upper()
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
    else:
        root.setLevel(logging.INFO)
        logging.getLogger(__name__).warning("LOG_LEVEL %r is not a level name; INFO used", level)
    # The NATS client logs every reconnect attempt at ERROR; ours say it once, better.
    logging.getLogger("nats").setLevel(logging.CRITICAL)


__all__ = ["RUN", "STEP", "JsonFormatter", "LogSettings", "TextFormatter", "configure", "handler"]
