"""The one shared httpx client per process, and how HTTP answers become our errors.

`classify(status, headers, provider)` is the one reading of an HTTP status and its
rate-limit headers (`retry-after`, `ratelimit-reset`, `x-ratelimit-reset`): ok, wait N
seconds, retryable, or permanent. Each provider's quirks are a row of `PROVIDERS`, not
another if-chain in its adapter.

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
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Annotated, Literal

import httpx
from msgspec import Meta

from shared.config import Settings
from shared.errors import AppError, NonRetryableError, RetryAfterError, UpstreamError

__all__ = [
    "DEFAULT",
    "PROVIDERS",
    "HttpSettings",
    "KindRule",
    "Outcome",
    "Provider",
    "Verdict",
    "classify",
    "create_http_client",
    "error_for",
    "raise_for_status",
    "rate_limit_delay",
    "redact",
    "retry_after_seconds",
    "safe_cause",
]

# Bounds on a delay an upstream asks for: at least a second (so a `retry-after: 0` does not
# spin), at most a day (a bogus header must not park a step for a year).
MIN_DELAY = 1.0
MAX_DELAY = 24 * 3600.0


class HttpSettings(Settings, frozen=True, kw_only=True):
    """The shared client's knobs (env: HTTP_TIMEOUT, HTTP_USER_AGENT, ...)."""

    http_timeout: Annotated[float, Meta(gt=0)] = 20.0
    http_connect_timeout: Annotated[float, Meta(gt=0)] = 5.0
    http_max_connections: Annotated[int, Meta(ge=1)] = 20
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


# -- what an HTTP status means for a retry -------------------------------------------------

Outcome = Literal["ok", "retry_after", "retryable", "permanent"]


@dataclass(frozen=True)
class Verdict:
    """What to do about one answer: nothing (ok), wait `delay` seconds and retry
    (retry_after), retry on the engine's backoff (retryable), or give up (permanent)."""

    outcome: Outcome
    delay: float | None = None


@dataclass(frozen=True)
class KindRule:
    """An error kind named in a provider's body (Resend's `name`) that decides by itself."""

    outcome: Outcome
    # retry_after: the wait when no header says how long.
    delay: float | None = None


@dataclass(frozen=True)
class Provider:
    """One upstream's quirks, as rows (httpx `_exceptions.py` style), read by `classify`.

    In order: a `kinds` row for the error kind in the body; a status in `rate_limited`
    (or in `limited_when_exhausted` with a header saying the quota is spent) → wait as the
    headers say, else `default_retry_after`; a redirect → permanent (never followed); a
    status in `retryable` → retryable; a 4xx in `permanent` (None: every 4xx) →
    permanent, other 4xx → retryable; 5xx and anything else → retryable.
    """

    name: str
    rate_limited: frozenset[int] = frozenset({429})
    limited_when_exhausted: frozenset[int] = frozenset()
    retryable: frozenset[int] = frozenset({408, 409, 425})
    permanent: frozenset[int] | None = None
    default_retry_after: float = 30.0
    kinds: Mapping[str, KindRule] = field(default_factory=dict)


#: The rules of a plain HTTP API, and each provider's differences from them.
DEFAULT = Provider("http")
PROVIDERS: Mapping[str, Provider] = MappingProxyType(
    {
        "http": DEFAULT,
        # 529 is Anthropic's "overloaded"; only these 4xx are the request's own fault.
        "anthropic": Provider(
            "anthropic",
            rate_limited=frozenset({429, 529}),
            retryable=frozenset(),
            permanent=frozenset({400, 401, 402, 403, 404, 413, 422}),
        ),
        # Resend: a monthly quota does not clear by waiting; a daily one clears in hours; a
        # concurrent request with the same idempotency key clears in a moment.
        "resend": Provider(
            "resend",
            retryable=frozenset({408}),
            default_retry_after=2.0,
            kinds=MappingProxyType(
                {
                    "monthly_quota_exceeded": KindRule("permanent"),
                    "daily_quota_exceeded": KindRule("retry_after", 3600.0),
                    "concurrent_idempotent_requests": KindRule("retry_after", 1.0),
                }
            ),
        ),
        "supabase-storage": Provider(
            "supabase-storage", retryable=frozenset({408, 409}), default_retry_after=5.0
        ),
        # GitHub's primary limit is a 403 with `x-ratelimit-remaining: 0` and the reset
        # time; its secondary limit a 403 or 429 with `retry-after`.
        "github": Provider(
            "github", limited_when_exhausted=frozenset({403}), default_retry_after=60.0
        ),
        # Public job boards (RemoteOK, Greenhouse, Lever, …): a 503 that says when to come
        # back is a rate limit too; a board we ask once an hour can wait a minute.
        "job-board": Provider(
            "job-board", limited_when_exhausted=frozenset({503}), default_retry_after=60.0
        ),
    }
)


def rate_limit_delay(
    headers: Mapping[str, str], *, now: Callable[[], float] = time.time
) -> float | None:
    """Seconds until an upstream lets us try again, bounded; None if no header says.

    `retry-after-ms`, then `retry-after` (seconds or an HTTP-date), then `ratelimit-reset`
    (seconds, the IETF draft), then `x-ratelimit-reset` (epoch seconds; a value too small
    to be a time since 2001 is read as seconds from now, as some APIs send it).
    """
    delay = retry_after_seconds(headers, now=now)
    if delay is not None:
        return delay
    lowered = {key.lower(): value for key, value in headers.items()}
    reset = _number(lowered.get("ratelimit-reset"))
    if reset is not None:
        return _bound(reset)
    reset = _number(lowered.get("x-ratelimit-reset"))
    if reset is not None:
        return _bound(reset - now() if reset >= _EPOCH_2001 else reset)
    return None


_EPOCH_2001 = 978_307_200.0


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _exhausted(headers: Mapping[str, str]) -> bool:
    lowered = {key.lower(): value.strip() for key, value in headers.items()}
    return (
        lowered.get("x-ratelimit-remaining") == "0"
        or lowered.get("ratelimit-remaining") == "0"
        or "retry-after" in lowered
    )


def classify(
    status: int,
    headers: Mapping[str, str] | None = None,
    provider: Provider = DEFAULT,
    *,
    kind: str | None = None,
    default_retry_after: float | None = None,
    now: Callable[[], float] = time.time,
) -> Verdict:
    """What `status` (with its headers, and the error kind the body names) means for a
    retry, by `provider`'s rows. `default_retry_after` overrides the provider's."""
    if 200 <= status < 300:
        return Verdict("ok")
    headers = headers or {}
    fallback = provider.default_retry_after if default_retry_after is None else default_retry_after
    rule = provider.kinds.get(kind) if kind else None
    if rule is not None:
        if rule.outcome != "retry_after":
            return Verdict(rule.outcome)
        delay = rate_limit_delay(headers, now=now)
        return Verdict("retry_after", delay if delay is not None else (rule.delay or fallback))
    if status in provider.rate_limited or (
        status in provider.limited_when_exhausted and _exhausted(headers)
    ):
        delay = rate_limit_delay(headers, now=now)
        return Verdict("retry_after", delay if delay is not None else fallback)
    if 300 <= status < 400:
        return Verdict("permanent")
    if status in provider.retryable:
        return Verdict("retryable")
    if 400 <= status < 500:
        if provider.permanent is None or status in provider.permanent:
            return Verdict("permanent")
        return Verdict("retryable")
    return Verdict("retryable")


def error_for(verdict: Verdict, message: str) -> AppError:
    """The narrowest error of our tree for a verdict that is not ok."""
    if verdict.outcome == "retry_after":
        return RetryAfterError(message, timedelta(seconds=verdict.delay or MIN_DELAY))
    if verdict.outcome == "permanent":
        return NonRetryableError(message)
    return UpstreamError(message)


def raise_for_status(
    response: httpx.Response,
    service: str,
    *,
    secrets: Iterable[str | None] = (),
    default_retry_after: float = 30.0,
    provider: Provider = DEFAULT,
) -> None:
    """Turn a non-2xx answer into the narrowest error of our tree, by `classify`.

    With the default rules: 429 → RetryAfterError (honouring the rate-limit headers), a
    redirect or another 4xx → NonRetryableError, 408/409/425, 5xx and anything else
    unexpected → UpstreamError (retryable by the engine). The message quotes at most the
    first 200 characters of the body, secrets redacted.
    """
    status = response.status_code
    verdict = classify(status, response.headers, provider, default_retry_after=default_retry_after)
    if verdict.outcome == "ok":
        return
    if 300 <= status < 400 and verdict.outcome == "permanent":
        raise NonRetryableError(f"{service} answered with a redirect ({status}); not followed")
    snippet = redact(_snippet(response), secrets)
    message = (
        f"{service} answered {status}: {snippet}" if snippet else f"{service} answered {status}"
    )
    raise error_for(verdict, message)


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    text = " ".join(text.split())
    return text[:limit] + ("…" if len(text) > limit else "")
