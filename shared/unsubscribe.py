"""One-click unsubscribe links: an HMAC-signed, expiring token per user and email type.

```python
links = UnsubscribeLinks(load_settings(UnsubscribeSettings, os.environ, required=(...)))
url = links.url(user_id, "weekly_summary", expires=week.end + links.ttl)  # in the email
claim = links.verify(token, now)  # at the gateway: raises InvalidTokenError if not ours
```

The token is `<payload>.<signature>`, both base64url: payload `v1:<user id>:<email
type>:<expiry unix seconds>`, signature HMAC-SHA256 of the payload with
UNSUBSCRIBE_SECRET. Nothing secret is in it; it only proves that we issued it, for whom,
and until when. The expiry is derived from what the email is about (the week), so the
same email rendered twice carries the same link.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import quote
from uuid import UUID

import msgspec

from shared.config import Settings
from shared.errors import AppError, ConfigError

#: Email type → the `email_preferences` flag an unsubscribe link turns off.
PREFERENCE_OF: Final = {
    "weekly_summary": "weeklySummary",
    "resume_ready": "resumeReady",
    "job_matches": "jobMatches",
    "application_updates": "applicationUpdates",
    "marketing": "marketingEmails",
}
MIN_SECRET = 16
_VERSION = "v1"


class InvalidTokenError(AppError):
    """The token is malformed, not signed by us, or expired."""


class UnsubscribeSettings(Settings, frozen=True, kw_only=True):
    """Env: UNSUBSCRIBE_SECRET (signing key), UNSUBSCRIBE_URL (the gateway's public
    /unsubscribe), UNSUBSCRIBE_TTL_DAYS (how long a link stays valid)."""

    unsubscribe_secret: str = ""
    unsubscribe_url: str = "http://127.0.0.1:8787/unsubscribe"
    unsubscribe_ttl_days: float = 60.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.unsubscribe_secret and len(self.unsubscribe_secret) < MIN_SECRET:
            raise ConfigError(f"UNSUBSCRIBE_SECRET must be at least {MIN_SECRET} characters")
        if self.unsubscribe_ttl_days <= 0:
            raise ConfigError("UNSUBSCRIBE_TTL_DAYS must be positive")


class Unsubscribe(msgspec.Struct, frozen=True, kw_only=True):
    """What a valid token says."""

    user_id: UUID
    email_type: str
    expires: datetime

    @property
    def preference(self) -> str:
        return PREFERENCE_OF[self.email_type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeLinks:
    """Signs and verifies unsubscribe tokens with one secret."""

    def __init__(self, settings: UnsubscribeSettings) -> None:
        if not settings.unsubscribe_secret:
            raise ConfigError("UNSUBSCRIBE_SECRET is not set (it signs unsubscribe links)")
        self._key = settings.unsubscribe_secret.encode()
        self.base_url = settings.unsubscribe_url
        self.ttl = timedelta(days=settings.unsubscribe_ttl_days)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def token(self, user_id: UUID | str, email_type: str, expires: datetime) -> str:
        if email_type not in PREFERENCE_OF:
            raise ValueError(f"no preference for email type {email_type!r}")
        payload = f"{_VERSION}:{UUID(str(user_id))}:{email_type}:{int(expires.timestamp())}"
        raw = payload.encode()
        return f"{_b64(raw)}.{_b64(self._sign(raw))}"

    def url(self, user_id: UUID | str, email_type: str, expires: datetime) -> str:
        sep = "&" if "?" in self.base_url else "?"
        token = self.token(user_id, email_type, expires)
        return f"{self.base_url}{sep}token={quote(token)}"

    def verify(self, token: str, now: datetime) -> Unsubscribe:
        """What the token says, if we signed it and it has not expired."""
        if not token or len(token) > 512 or token.count(".") != 1:
            raise InvalidTokenError("the unsubscribe token is malformed")
        body, signature = token.split(".")
        try:
            raw, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            raise InvalidTokenError("the unsubscribe token is malformed") from None
        if _b64(raw) != body or _b64(given) != signature:
            # A last character that differs only in base64's unused bits decodes to the
            # same bytes: one token, one spelling, so a changed token never verifies.
            raise InvalidTokenError("the unsubscribe token is malformed")
        if not hmac.compare_digest(self._sign(raw), given):
            raise InvalidTokenError("the unsubscribe token is not valid")
        try:
            version, user, email_type, expiry = raw.decode().split(":")
            claim = Unsubscribe(
                user_id=UUID(user),
                email_type=email_type,
                expires=datetime.fromtimestamp(int(expiry), UTC),
            )
        except (UnicodeDecodeError, ValueError):
            raise InvalidTokenError("the unsubscribe token is malformed") from None
        if version != _VERSION or email_type not in PREFERENCE_OF:
            raise InvalidTokenError("the unsubscribe token is not valid")
        if claim.expires <= now:
            raise InvalidTokenError("the unsubscribe link has expired")
        return claim
