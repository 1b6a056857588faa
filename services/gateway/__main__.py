"""`python -m services.gateway`: read the environment, open NATS, serve HTTP with uvicorn.

The only place the gateway reads the environment. A missing WORKFLOWS_AUTH_TOKEN stops it
at once with a message naming the variable (exit code 2).
"""

from __future__ import annotations

import logging
import os
import sys
from functools import partial

import uvicorn

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.engine import nats_engine
from shared.config import EngineSettings, load_settings
from shared.errors import ConfigError


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings(GatewaySettings, os.environ, required=("workflows_auth_token",))
        engine_settings = load_settings(EngineSettings, os.environ)
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, partial(nats_engine, engine_settings))
    # uvicorn's access log would print `/e/{eventKey}` paths, whose key is a credential;
    # the app logs requests itself with the key redacted.
    uvicorn.run(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        access_log=False,
        log_config=None,
        proxy_headers=False,
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=64 * 1024,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
