"""Bearer-token authentication (and a redacting access log) as one ASGI middleware.

Runs before routing and before any body is read: an unauthenticated request costs no
parsing and reaches no handler. Tokens are compared as SHA-256 digests with
`hmac.compare_digest`, so neither their content nor their length leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Sequence

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

log = logging.getLogger("services.gateway.access")

# /unsubscribe carries its own proof: a signed token (services/gateway/unsubscribe.py).
PUBLIC_PATHS = frozenset({"/health", "/unsubscribe"})
# /progress/{workflow}/{id} carries a progress token (services/gateway/progress.py).
TOKEN_PREFIXES = ("/progress/",)
# The dashboard has its own guard: a session cookie from its login page (services/gateway/ui).
UI_PREFIX = "/ui"
EVENT_KEY_PREFIX = "/e/"
_UNAUTHORIZED = b'{"error":"missing or invalid bearer token","field":"Authorization"}'


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def _matches(candidate: bytes, digests: Sequence[bytes]) -> bool:
    """Whether `candidate` (a digest) equals any of `digests`; every one is compared."""
    found = False
    for known in digests:
        found |= hmac.compare_digest(candidate, known)
    return found


def redacted(path: str) -> str:
    """A path fit for logs: the event key of `/e/{eventKey}` is a credential."""
    if path.startswith(EVENT_KEY_PREFIX):
        return EVENT_KEY_PREFIX + "***"
    return path


class BearerAuth:
    """Let a request through only with `Authorization: Bearer <token>` (exactly that form),
    or, on `POST /e/{eventKey}`, with one of the configured event keys in the path."""

    def __init__(self, app: ASGIApp, token: str, event_keys: Sequence[str] = ()) -> None:
        self.app = app
        self._token = digest(token)
        self._event_keys = [digest(key) for key in event_keys]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            if self._allowed(scope):
                await self.app(scope, receive, send_logged)
            else:
                await _deny(send_logged)
        finally:
            log.info(
                "%s %s %d %.1fms",
                scope.get("method", "-"),
                redacted(scope.get("path", "")),
                status,
                (time.perf_counter() - started) * 1000,
            )

    def _allowed(self, scope: Scope) -> bool:
        path: str = scope.get("path", "")
        if (
            path in PUBLIC_PATHS
            or scope.get("method") == "OPTIONS"
            or (path.startswith(TOKEN_PREFIXES) and scope.get("method") == "GET")
        ):
            return True  # health checks and CORS preflight carry no credentials
        if path == UI_PREFIX or path.startswith(UI_PREFIX + "/"):
            return True
        values = [value for name, value in scope.get("headers", ()) if name == b"authorization"]
        if values:
            if len(values) != 1 or not values[0].startswith(b"Bearer "):
                return False
            token = values[0][len(b"Bearer ") :]
            return hmac.compare_digest(hashlib.sha256(token).digest(), self._token)
        if self._event_keys and path.startswith(EVENT_KEY_PREFIX):
            key = path[len(EVENT_KEY_PREFIX) :]
            return bool(key) and "/" not in key and _matches(digest(key), self._event_keys)
        return False


async def _deny(send: Send) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": 401,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_UNAUTHORIZED)).encode()),
            (b"www-authenticate", b'Bearer realm="howlerhire"'),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": _UNAUTHORIZED, "more_body": False})
