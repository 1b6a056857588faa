"""Dashboard sessions: the bearer token exchanged for a signed cookie, and CSRF tokens.

A session is stateless: `v1.<expires>.<nonce>.<mac>`, the MAC an HMAC-SHA256 under a key
derived from WORKFLOWS_AUTH_TOKEN. Every gateway process (and replica) verifies it
without shared storage, and rotating the token ends every session. The CSRF token is
another HMAC of the session's nonce: bound to the session, never stored, checked on
every state-changing request (form field `csrf` or header `X-CSRF-Token`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from services.gateway.auth import digest

COOKIE = "hh_ui"
LIFETIME = 12 * 3600  # seconds a session lasts
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True)
class Session:
    nonce: str
    expires: int
    csrf: str


class Sessions:
    """Issues and verifies sessions for one auth token."""

    def __init__(self, token: str, lifetime: int = LIFETIME) -> None:
        self._token = digest(token)
        self._key = hmac.new(self._token, b"howlerhire-ui-session-v1", hashlib.sha256).digest()
        self.lifetime = lifetime

    def token_matches(self, candidate: str) -> bool:
        """The bearer-token check of `services.gateway.auth`: digests compared in constant
        time, so neither the token's content nor its length leaks through timing."""
        return hmac.compare_digest(digest(candidate), self._token)

    def _mac(self, message: str) -> str:
        return hmac.new(self._key, message.encode(), hashlib.sha256).hexdigest()

    def _csrf(self, nonce: str) -> str:
        return self._mac(f"csrf.{nonce}")[:40]

    def issue(self, now: float | None = None) -> tuple[str, Session]:
        """A new session: the cookie value and what it stands for."""
        expires = int(now if now is not None else time.time()) + self.lifetime
        nonce = secrets.token_urlsafe(18)
        body = f"v1.{expires}.{nonce}"
        return f"{body}.{self._mac(body)}", Session(nonce, expires, self._csrf(nonce))

    def verify(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie carries, or None (missing, forged, expired)."""
        if not cookie or len(cookie) > 200:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit():
            return None
        body = ".".join(parts[:3])
        if not hmac.compare_digest(self._mac(body), parts[3]):
            return None
        expires = int(parts[1])
        if expires <= (now if now is not None else time.time()):
            return None
        return Session(parts[2], expires, self._csrf(parts[2]))

    @staticmethod
    def csrf_ok(session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(session.csrf, presented)
