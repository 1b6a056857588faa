"""The one HTTP status classifier: statuses, rate-limit headers and each provider's rows."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.http import DEFAULT, PROVIDERS, Verdict, classify, error_for, rate_limit_delay

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def clock() -> float:
    return NOW


def test_default_rules_by_status():
    """2xx ok, 429 waits, redirects and 4xx are permanent, 408/409/425 and 5xx retry."""
    expected = {
        200: "ok",
        204: "ok",
        301: "permanent",
        307: "permanent",
        400: "permanent",
        401: "permanent",
        403: "permanent",
        404: "permanent",
        408: "retryable",
        409: "retryable",
        422: "permanent",
        425: "retryable",
        429: "retry_after",
        500: "retryable",
        502: "retryable",
        503: "retryable",
        529: "retryable",
        600: "retryable",
    }
    got = {status: classify(status, {}, DEFAULT).outcome for status in expected}
    assert got == expected


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"Retry-After": "Thu, 01 Jan 2026 00:01:30 GMT"}, 90.0),
        ({"RateLimit-Reset": "42"}, 42.0),
        ({"X-RateLimit-Reset": str(int(NOW) + 600)}, 600.0),
        ({"x-ratelimit-reset": "15"}, 15.0),  # a small value: seconds from now
        ({"retry-after": "3", "x-ratelimit-reset": str(int(NOW) + 600)}, 3.0),
        ({"retry-after": "0"}, 1.0),  # never a zero wait that would spin
        ({"retry-after": "-5"}, 1.0),
        ({"x-ratelimit-reset": str(int(NOW) - 60)}, 1.0),  # already past
        ({"retry-after": str(10**9)}, 24 * 3600.0),  # a bogus header parks for a day at most
        ({"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"}, 24 * 3600.0),
    ],
)
def test_rate_limit_headers(headers, seconds):
    """Each header form gives its wait in seconds, bounded to [1 s, 1 day]."""
    assert rate_limit_delay(headers, now=clock) == pytest.approx(seconds)
    assert classify(429, headers, DEFAULT, now=clock) == Verdict("retry_after", seconds)


@pytest.mark.parametrize(
    "headers",
    [{}, {"retry-after": "soon"}, {"x-ratelimit-reset": "nan"}, {"ratelimit-reset": ""}],
)
def test_no_usable_header_falls_back_to_the_default(headers):
    """Without a readable header the provider's (or the caller's) default wait applies."""
    assert rate_limit_delay(headers, now=clock) is None
    assert classify(429, headers, DEFAULT).delay == 30.0
    assert classify(429, headers, DEFAULT, default_retry_after=4.0).delay == 4.0


def test_anthropic_rows():
    """529 (overloaded) waits like 429; only its listed 4xx are permanent, 409 retries."""
    claude = PROVIDERS["anthropic"]
    assert classify(529, {"retry-after": "8"}, claude) == Verdict("retry_after", 8.0)
    assert classify(429, {}, claude, default_retry_after=12.0) == Verdict("retry_after", 12.0)
    for status in (400, 401, 402, 403, 404, 413, 422):
        assert classify(status, {}, claude).outcome == "permanent", status
    for status in (405, 408, 409, 500, 503):
        assert classify(status, {}, claude).outcome == "retryable", status


def test_resend_rows():
    """A monthly quota is permanent, a daily one waits an hour, an idempotency race 1 s."""
    resend = PROVIDERS["resend"]
    assert classify(429, {}, resend, kind="monthly_quota_exceeded").outcome == "permanent"
    assert classify(429, {}, resend, kind="daily_quota_exceeded") == Verdict("retry_after", 3600.0)
    daily = classify(429, {"retry-after": "120"}, resend, kind="daily_quota_exceeded")
    assert daily == Verdict("retry_after", 120.0)  # the header wins over the row's default
    race = classify(409, {}, resend, kind="concurrent_idempotent_requests")
    assert race == Verdict("retry_after", 1.0)
    assert classify(429, {}, resend, kind="rate_limit_exceeded") == Verdict("retry_after", 2.0)
    assert classify(409, {}, resend, kind="invalid_idempotent_request").outcome == "permanent"
    assert classify(425, {}, resend).outcome == "permanent"
    assert classify(408, {}, resend).outcome == "retryable"


def test_github_rows():
    """A 403 is a rate limit only when the quota is spent (or retry-after is sent)."""
    github = PROVIDERS["github"]
    reset = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(NOW) + 300)}
    assert classify(403, reset, github, now=clock) == Verdict("retry_after", 300.0)
    assert classify(403, {"retry-after": "60"}, github) == Verdict("retry_after", 60.0)
    assert classify(403, {"x-ratelimit-remaining": "12"}, github).outcome == "permanent"
    assert classify(429, {}, github) == Verdict("retry_after", 60.0)


def test_storage_rows():
    """Storage retries 408 and 409, not 425, and waits 5 s on a bare 429."""
    storage = PROVIDERS["supabase-storage"]
    assert classify(409, {}, storage).outcome == "retryable"
    assert classify(425, {}, storage).outcome == "permanent"
    assert classify(429, {}, storage) == Verdict("retry_after", 5.0)


def test_verdicts_become_the_narrowest_error():
    """retry_after → RetryAfterError with its delay, permanent → NonRetryable, else Upstream."""
    waited = error_for(Verdict("retry_after", 7.0), "slow down")
    assert isinstance(waited, RetryAfterError) and waited.delay == timedelta(seconds=7)
    assert isinstance(error_for(Verdict("permanent"), "no"), NonRetryableError)
    retry = error_for(Verdict("retryable"), "later")
    assert isinstance(retry, UpstreamError) and str(retry) == "later"
