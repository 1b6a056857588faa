"""The one shared httpx client per process, and how HTTP answers become our errors.

Every adapter that speaks plain HTTP (GitHub, RemoteOK, WeWorkRemotely, Supabase Storage)
takes this client as an argument; `__main__` opens it once in its `AsyncExitStack`.
Redirects are never followed by default, so a request only ever reaches the host its
adapter chose.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta

import httpx
import msgspec

from shared.errors import NonRetryableError, RetryAfterError, UpstreamError

__all__ = [
    "HttpSettings",
    "create_http_client",
    "raise_for_status",
    "redact",
    "retry_after_seconds",
    "safe_cause",
]

# Bounds on a delay an upstream asks for: at least a second (so a `retry-after: 0` does not
# spin), at most a day (a bogus header must not park a step for a year).
MIN_DELAY = 1.0
MAX_DELAY = 24 * 3600.0


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The shared client's knobs (env: HTTP_TIMEOUT, HTTP_USER_AGENT, ...)."""

    http_timeout: float = 20.0
    http_connect_timeout: float = 5.0
    http_max_connections: int = 20
    # RemoteOK refuses requests without a real User-Agent; GitHub asks for one too.
    http_user_agent: str = "HowlerHire-Jobs/0.1 (+https://github.com/howlerhire/jobs)"


def create_http_client(settings: HttpSettings | None = None) -> httpx.AsyncClient:
    """The process's shared client: bounded timeouts and pool, a User-Agent, no redirects.

    The caller owns it (`async with create_http_client(...) as client:`).
    """
    settings = settings or HttpSettings()
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout),
        limits=httpx.Limits(
            max_connections=settings.http_max_connections, max_keepalive_connections=10
        ),
        headers={"User-Agent": settings.http_user_agent},
        follow_redirects=False,
        # Never pick up proxies or netrc credentials from the environment: a proxy would
        # see every request, and netrc could attach credentials to an unexpected host.
        trust_env=False,
    )


def retry_after_seconds(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """The delay a `retry-after` / `retry-after-ms` header asks for, bounded; None if absent.

    `retry-after` may be delta-seconds (possibly fractional) or an HTTP-date.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    raw_ms = lowered.get("retry-after-ms")
    if raw_ms:
        try:
            return _bound(float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = lowered.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return _bound(float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return _bound(when.timestamp() - now())


def _bound(seconds: float) -> float:
    if math.isnan(seconds):
        return MIN_DELAY
    return min(max(seconds, MIN_DELAY), MAX_DELAY)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every secret value replaced by `***` (for messages built from replies)."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def safe_cause(exc: BaseException, secrets: Iterable[str | None]) -> BaseException | None:
    """`exc` to chain with `raise ... from`, or None if its text holds a secret.

    Our own messages are redacted; this keeps a third-party exception that echoes a key
    (a misbehaving proxy, say) out of tracebacks too.
    """
    text = f"{exc!s} {exc!r}"
    return None if any(s and len(s) >= 4 and s in text for s in secrets) else exc


def raise_for_status(
    response: httpx.Response,
    service: str,
    *,
    secrets: Iterable[str | None] = (),
    default_retry_after: float = 30.0,
) -> None:
    """Turn a non-2xx answer into the narrowest error of our tree.

    429 → RetryAfterError (honouring `retry-after`), other 4xx → NonRetryableError,
    5xx and anything else unexpected → UpstreamError (retryable by the engine).
    The message quotes at most the first 200 characters of the body, secrets redacted.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = redact(_snippet(response), secrets)
    message = (
        f"{service} answered {status}: {snippet}" if snippet else f"{service} answered {status}"
    )
    if status == 429:
        delay = retry_after_seconds(response.headers) or default_retry_after
        raise RetryAfterError(message, timedelta(seconds=delay))
    if 300 <= status < 400:
        raise NonRetryableError(f"{service} answered with a redirect ({status}); not followed")
    if status in (408, 409, 425):
        raise UpstreamError(message)
    if 400 <= status < 500:
        raise NonRetryableError(message)
    raise UpstreamError(message)


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
