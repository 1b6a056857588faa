"""`python -m services.gateway`: read the environment, open NATS, serve HTTP with uvicorn.

The only place the gateway reads the environment. A missing WORKFLOWS_AUTH_TOKEN stops it
at once with a message naming the variable (exit code 2).
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial
from typing import Annotated, Any, Literal

import uvicorn
from litestar import Litestar
from msgspec import Meta

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.engine import nats_engine
from services.gateway.http import MAX_HEAD_BYTES
from shared.config import EngineSettings, Settings, load_settings
from shared.errors import ConfigError
from shared.logs import configure as configure_logging_for
from shared.metrics import serve as serve_metrics
from shared.unsubscribe import UnsubscribeLinks, UnsubscribeSettings

# uvicorn's `http=`: an import string, so that worker processes (GATEWAY_WORKERS) load it too.
HTTP_PROTOCOLS = {"h11": "h11", "httptools": "services.gateway.http:LimitedHttpTools"}


class ServerSettings(Settings, frozen=True, kw_only=True):
    """How the gateway's HTTP server runs (uvicorn)."""

    # Gateway processes sharing the port (uvicorn workers); each holds its own NATS
    # connection. One process parses HTTP on one core.
    gateway_workers: Annotated[int, Meta(ge=1)] = 1
    # "httptools" (default) parses HTTP in C, with the head limits of
    # services/gateway/http.py (64 KiB, 100 headers: 431 beyond); "h11" is uvicorn's
    # pure-Python parser (the same 64 KiB cap), at several times the CPU per request.
    gateway_http_parser: Literal["h11", "httptools"] = "httptools"
    # "uvloop" (default): libuv's event loop, less CPU per request and per NATS publish;
    # "asyncio": the standard library's.
    gateway_event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # A logging level name, any case (LOG_LEVEL).
    log_level: str = "INFO"


def _load() -> tuple[GatewaySettings, EngineSettings, ServerSettings]:
    settings = load_settings(GatewaySettings, os.environ)
    return (
        settings,
        load_settings(EngineSettings, os.environ),
        load_settings(ServerSettings, os.environ),
    )


def _links() -> UnsubscribeLinks | None:
    """Unsubscribe-link verification, if UNSUBSCRIBE_SECRET is set (else /unsubscribe: 503)."""
    settings = load_settings(UnsubscribeSettings, os.environ)
    if not settings.unsubscribe_secret:
        logging.getLogger(__name__).warning(
            "UNSUBSCRIBE_SECRET is not set: /unsubscribe answers 503"
        )
        return None
    return UnsubscribeLinks(settings)


def build_app() -> Litestar:
    """The app from the environment (what each uvicorn worker process calls)."""
    settings, engine_settings, _ = _load()
    # Per process: with GATEWAY_WORKERS > 1 the first process binds METRICS_PORT and the
    # others log that it is taken (each process counts only its own requests).
    serve_metrics(engine_settings.metrics_port, engine_settings.metrics_host)
    return create_app(settings, partial(nats_engine, engine_settings), _links())


def main() -> int:
    try:
        settings, _, server = _load()
        load_settings(UnsubscribeSettings, os.environ)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    try:
        configure_logging_for("gateway", os.environ)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    # uvicorn's access log would print `/e/{eventKey}` paths, whose key is a credential;
    # the app logs requests itself with the key redacted.
    options: dict[str, Any] = {
        "host": settings.gateway_host,
        "port": settings.gateway_port,
        "access_log": False,
        "log_config": None,
        "proxy_headers": False,
        "timeout_graceful_shutdown": 10,
        "http": HTTP_PROTOCOLS[server.gateway_http_parser],
        "loop": server.gateway_event_loop,
    }
    if server.gateway_http_parser == "h11":
        options["h11_max_incomplete_event_size"] = MAX_HEAD_BYTES
    if server.gateway_workers > 1:
        uvicorn.run(
            "services.gateway.__main__:build_app",
            factory=True,
            workers=server.gateway_workers,
            **options,
        )
    else:
        uvicorn.run(build_app(), **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
