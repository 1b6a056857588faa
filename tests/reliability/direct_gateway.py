"""`python -m tests.reliability.direct_gateway`: the gateway with its app built by `Litestar(...)`.

The product builds it with `Litestar.from_config`; S2 asserts the body limit on both build
paths (litestar#4296: one of them once skipped the limit's default)."""

from __future__ import annotations

import dataclasses
import sys

from litestar import Litestar

import services.gateway.__main__ as gateway_main
from services.gateway import app as gateway_app
from services.gateway.config import GatewaySettings
from services.gateway.ui import UiEdge
from shared.unsubscribe import UnsubscribeLinks


def create_direct(
    settings: GatewaySettings,
    engine_factory: gateway_app.EngineFactory,
    links: UnsubscribeLinks | None = None,
) -> Litestar:
    """`create_app`, but the constructor gets only the options the gateway sets."""
    config = gateway_app.app_config(settings, engine_factory, links)
    defaults = type(config)()
    options = {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if getattr(config, field.name) != getattr(defaults, field.name)
    }
    app = Litestar(**options)
    app.asgi_handler = UiEdge(app.asgi_handler, settings.ui_base_path)
    return app


if __name__ == "__main__":
    # `__main__` calls the `create_app` it imported: replace that name, not the original.
    vars(gateway_main)["create_app"] = create_direct
    sys.exit(gateway_main.main())
