"""Unsubscribe tokens: ours verify until they expire; forged, tampered or expired do not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ConfigError
from shared.unsubscribe import InvalidTokenError, UnsubscribeLinks, UnsubscribeSettings

SECRET = "a-long-enough-test-secret-0123"
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def links(secret: str = SECRET) -> UnsubscribeLinks:
    return UnsubscribeLinks(UnsubscribeSettings(unsubscribe_secret=secret))


def test_round_trip_names_the_user_type_and_preference():
    """A token says who, which email type, and until when."""
    user = uuid.uuid4()
    token = links().token(user, "weekly_summary", NOW + timedelta(days=60))
    claim = links().verify(token, NOW)
    assert (claim.user_id, claim.email_type, claim.preference) == (
        user,
        "weekly_summary",
        "weeklySummary",
    )
    assert links().token(user, "weekly_summary", NOW + timedelta(days=60)) == token  # stable


def test_forged_tampered_expired_and_garbage_are_refused():
    """Another secret, a changed payload or signature, an expired one, garbage: refused."""
    user = uuid.uuid4()
    good = links().token(user, "weekly_summary", NOW + timedelta(days=1))
    body, signature = good.split(".")
    other = links().token(uuid.uuid4(), "resume_ready", NOW + timedelta(days=1))
    bad = [
        links("someone-elses-secret-0123456").token(user, "weekly_summary", NOW + timedelta(1)),
        f"{other.split('.')[0]}.{signature}",  # someone else's payload with our signature
        f"{body}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        links().token(user, "weekly_summary", NOW - timedelta(seconds=1)),
        "",
        "x" * 600,
        "no-dot",
        "a.b.c",
        "!!!.???",
    ]
    for token in bad:
        with pytest.raises(InvalidTokenError):
            links().verify(token, NOW)


def test_url_and_settings():
    """The URL carries the token as a query parameter; a missing or short secret is a
    configuration error naming UNSUBSCRIBE_SECRET, and settings never print it."""
    url = links().url(uuid.uuid4(), "weekly_summary", NOW)
    assert url.startswith("http://127.0.0.1:8787/unsubscribe?token=")
    with pytest.raises(ConfigError, match="UNSUBSCRIBE_SECRET"):
        UnsubscribeLinks(UnsubscribeSettings())
    with pytest.raises(ConfigError, match="UNSUBSCRIBE_SECRET"):
        UnsubscribeSettings(unsubscribe_secret="short")
    assert SECRET not in repr(UnsubscribeSettings(unsubscribe_secret=SECRET))
