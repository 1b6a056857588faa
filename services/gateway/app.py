"""The gateway's Litestar application: `create_app(settings, engine_factory)`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

from litestar import Litestar
from litestar.config.app import AppConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.middleware import DefineMiddleware

from services.gateway import (
    compat,
    crossrun,
    events,
    instances,
    openapi,
    operations,
    privacy,
    progress,
    unsubscribe,
)
from services.gateway.auth import BearerAuth
from services.gateway.config import GatewaySettings
from services.gateway.engine import Engine
from services.gateway.errors import (
    DOMAIN_ERRORS,
    ApiError,
    on_api_error,
    on_domain_error,
    on_http_exception,
    on_unexpected,
)
from services.gateway.observe import RequestMetrics
from services.gateway.schemas import BodyError
from services.gateway.ui import UiConfig, UiEdge, template_config, ui_router
from shared.unsubscribe import UnsubscribeLinks

log = logging.getLogger(__name__)

EngineFactory = Callable[[], AbstractAsyncContextManager[Engine]]

ROUTES = [
    compat.health,
    compat.trigger,
    compat.status,
    events.send_with_key,
    events.send_events,
    instances.list_workflows,
    instances.list_instances,
    instances.list_workflow_instances,
    instances.create_instance,
    instances.get_instance,
    instances.change_status,
    instances.send_instance_event,
    operations.list_dead_letters,
    operations.get_dead_letter,
    operations.redrive_dead_letter,
    operations.redrive_dead_letters,
    operations.purge_dead_letters,
    operations.start_bulk,
    operations.get_bulk,
    crossrun.invalidate_workflow_cache,
    crossrun.invalidate_step_cache,
    crossrun.rate_limits,
    openapi.openapi_document,
    unsubscribe.unsubscribe_page,
    unsubscribe.unsubscribe_now,
    unsubscribe.list_schedules,
    progress.create_progress_token,
    progress.get_progress,
    privacy.erase_user_data,
]


def app_config(
    settings: GatewaySettings,
    engine_factory: EngineFactory,
    links: UnsubscribeLinks | None = None,
) -> AppConfig:
    """Everything the app is made of; `create_app` builds it through `Litestar.from_config`."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with engine_factory() as engine:
            app.state.engine = engine
            app.state.settings = settings
            log.info("gateway ready: %d workflows", len(engine.routes))
            yield

    def provide_engine(state: State) -> Engine:
        engine: Engine = state.engine
        return engine

    keys = progress.parse_keys(settings.progress_token_keys)
    tokens = progress.ProgressTokens(keys, settings.progress_token_ttl) if keys else None
    if tokens is None:
        log.warning(
            "%s is not set: /progress and /progress-tokens answer 503", progress.KEYS_VARIABLE
        )
    cors = None
    if settings.origins:
        cors = CORSConfig(
            allow_origins=settings.origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "Last-Event-ID"],
            allow_credentials=False,
            max_age=600,
        )
    return AppConfig(
        route_handlers=[*ROUTES, ui_router()],
        dependencies={
            "engine": Provide(provide_engine, sync_to_thread=False),
            "links": Provide(lambda: links, sync_to_thread=False),
            "progress_tokens": Provide(lambda: tokens, sync_to_thread=False),
        },
        lifespan=[lifespan],
        state=State({"ui": UiConfig(settings.workflows_auth_token, settings.ui_base_path)}),
        middleware=[
            # Outermost: refused requests (401) are counted too.
            DefineMiddleware(RequestMetrics),
            DefineMiddleware(
                BearerAuth,
                token=settings.workflows_auth_token,
                event_keys=settings.accepted_event_keys,
            ),
        ],
        cors_config=cors,
        template_config=template_config(),
        # Set explicitly: the default is not applied on every build path (litestar#4296).
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        openapi_config=None,  # served by `openapi.openapi_document`, built from the routes
        exception_handlers={
            ApiError: on_api_error,
            BodyError: on_api_error,
            **dict.fromkeys(DOMAIN_ERRORS, on_domain_error),
            HTTPException: on_http_exception,
            Exception: on_unexpected,
        },
    )


def create_app(
    settings: GatewaySettings,
    engine_factory: EngineFactory,
    links: UnsubscribeLinks | None = None,
) -> Litestar:
    """The gateway app. `engine_factory` opens the engine for the app's lifetime (in
    production `partial(nats_engine, engine_settings)`; tests pass their own). `links`
    verifies unsubscribe tokens (None: /unsubscribe answers 503)."""
    app = Litestar.from_config(app_config(settings, engine_factory, links))
    # Around routing (Litestar's own middleware runs after it): maps UI_BASE_PATH/ui to
    # /ui and sets the dashboard's security headers, on 404s too.
    app.asgi_handler = UiEdge(app.asgi_handler, settings.ui_base_path)
    return app
