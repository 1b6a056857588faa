"""The operator dashboard at `/ui`: server-rendered pages (Litestar + Jinja2) with htmx.

Outside the bearer-token guard (a browser cannot send the token on every request) and
behind its own: a session cookie obtained at `/ui/login` with that token, plus a CSRF
token on every state-changing request. `UiEdge` serves it under `UI_BASE_PATH` whether a
reverse proxy strips that prefix or keeps it, and sets the security headers.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.enums import ScopeType
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.ui import live, views
from services.gateway.ui.render import template_config
from services.gateway.ui.views import LoginRequired, Refused, UiConfig

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"
# Scripts, styles, connections and forms only from this origin; no inline script or
# style (htmx runs with allowEval off and no indicator styles), no framing.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]

__all__ = ["PREFIX", "UiConfig", "UiEdge", "is_ui_path", "template_config", "ui_router"]


def is_ui_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def ui_router() -> Router:
    """Every dashboard route under /ui, behind the session guard."""
    static = create_static_files_router(
        path="/static", directories=[STATIC], opt={"public": True}, name="ui-static"
    )
    return Router(
        path=PREFIX,
        route_handlers=[
            views.login_page,
            views.login,
            views.logout,
            views.overview_page,
            views.runs_page,
            views.run_page,
            views.step_value,
            views.run_action,
            views.run_event,
            views.dlq_page,
            views.dlq_redrive,
            views.dlq_redrive_all,
            views.schedules_page,
            views.bulk_page,
            views.bulk_submit,
            views.bulk_job_page,
            live.live_runs,
            live.live_run,
            static,
        ],
        guards=[views.session_guard],
        exception_handlers={
            LoginRequired: views.on_login_required,
            Refused: views.on_refused,
            **dict.fromkeys(views.ENGINE_REFUSALS, views.on_refused),
        },
        include_in_schema=False,
    )


class UiEdge:
    """ASGI middleware in front of everything: maps `<UI_BASE_PATH>/ui/...` to `/ui/...`
    (a proxy that keeps the prefix) and leaves `/ui/...` as it is (one that strips it),
    and adds the security headers to every dashboard response, errors included."""

    def __init__(self, app: ASGIApp, base_path: str = "") -> None:
        self.app = app
        self.base = base_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if self.base and is_ui_path(path[len(self.base) :]) and path.startswith(self.base):
            scope = {**scope, "path": path[len(self.base) :]}
            raw = scope.get("raw_path")
            if isinstance(raw, bytes) and raw.startswith(self.base.encode()):
                scope["raw_path"] = raw[len(self.base) :]
        if not is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] not in _OURS]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_secured)


_OURS = frozenset(name for name, _ in SECURITY_HEADERS)
