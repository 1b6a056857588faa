"""Request metrics of the gateway: `howlerhire_http_requests_total` by route template.

The route label is Litestar's path template (`/workflows/{workflow}/instances/{id}`),
never the raw path: one series per route, however many instance ids are asked for, and
no event key of `/e/{eventKey}` in a label.
"""

from __future__ import annotations

import time

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shared.metrics import metrics


class RequestMetrics:
    """Counts each HTTP request by method, route template and status, and times it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        m = metrics()
        self._requests = m.http_requests
        self._duration = m.http_duration

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the handler dies before answering

        async def send_seen(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_seen)
        finally:
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "-")
            self._requests.labels(method, route, str(status)).inc()
            self._duration.labels(method, route).observe(time.perf_counter() - started)
