"""The email adapter: Resend through its async SDK against the fake, and the outbox stand-in."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from shared.config import load_settings
from shared.email import (
    EmailSettings,
    OutboxEmailSender,
    OutgoingEmail,
    ResendEmailSender,
    create_email_sender,
)
from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from tests.integration.adapters.conftest import RESEND_KEY
from tests.support.fakes import RunningFake

EMAIL = OutgoingEmail(
    to="jordan@example.com",
    subject="Your Weekly Job Search Summary",
    html="<h1>3 jobs</h1>",
    idempotency_key="weekly-summary:user-1:2026-W48",
)


def resend_sender(fake: RunningFake) -> ResendEmailSender:
    env = {
        "RESEND_API_KEY": RESEND_KEY,
        "RESEND_API_URL": fake.url,
        "EMAIL_FROM": "HowlerHire <hi@howlerhire.dev>",
    }
    sender = create_email_sender(load_settings(EmailSettings, env))
    assert isinstance(sender, ResendEmailSender)
    return sender


async def test_send_posts_to_resend_with_the_idempotency_key(resend_fake: RunningFake) -> None:
    """A send is one POST /emails carrying the key, the bearer token and the message."""
    async with resend_sender(resend_fake) as sender:
        sent = await sender.send(EMAIL)
    assert sent.provider == "resend" and sent.message_id
    request = resend_fake.control.last_request("/emails")
    assert request["headers"]["idempotency-key"] == EMAIL.idempotency_key
    assert request["headers"]["authorization"] == f"Bearer {RESEND_KEY}"
    body = json.loads(request["body"])
    assert body == {
        "from": "HowlerHire <hi@howlerhire.dev>",
        "to": ["jordan@example.com"],
        "subject": EMAIL.subject,
        "html": EMAIL.html,
    }


async def test_a_repeated_send_delivers_once(resend_fake: RunningFake) -> None:
    """The same logical email sent twice (a redelivery) gets one id and one delivery."""
    async with resend_sender(resend_fake) as sender:
        first = await sender.send(EMAIL)
        second = await sender.send(EMAIL)
        other = await sender.send(
            OutgoingEmail(
                to="sam@example.com", subject="Hi", html="<p>x</p>", idempotency_key="k-2"
            )
        )
    assert first.message_id == second.message_id != other.message_id
    stats = resend_fake.control.stats()
    assert stats["by_idempotency_key"] == {EMAIL.idempotency_key: 2, "k-2": 1}
    assert stats["deliveries"] == 2


async def test_concurrent_sends_keep_their_own_keys(resend_fake: RunningFake) -> None:
    """Twenty concurrent sends each carry their own key (the SDK's globals do not mix them)."""
    emails = [
        OutgoingEmail(to=f"u{i}@example.com", subject="s", html="h", idempotency_key=f"key-{i}")
        for i in range(20)
    ]
    async with resend_sender(resend_fake) as sender:
        await asyncio.gather(*(sender.send(e) for e in emails))
    delivered = resend_fake.control.stats()["delivered"]
    assert {(d["idempotency_key"], d["to"][0]) for d in delivered} == {
        (f"key-{i}", f"u{i}@example.com") for i in range(20)
    }


@pytest.mark.parametrize(
    ("fixture", "headers", "expected"),
    [
        ("resend/error_429_rate_limit_exceeded.json", {"retry-after": "3"}, 3.0),
        ("resend/error_429_rate_limit_exceeded.json", {}, 2.0),
        ("resend/error_429_daily_quota_exceeded.json", {}, 3600.0),
    ],
)
async def test_429_becomes_retry_after(
    resend_fake: RunningFake, fixture: str, headers: dict[str, str], expected: float
) -> None:
    """Resend's 429s become RetryAfterError with retry-after, or a default per kind of limit."""
    resend_fake.control.script(status=429, fixture=fixture, headers=headers)
    async with resend_sender(resend_fake) as sender:
        with pytest.raises(RetryAfterError) as caught:
            await sender.send(EMAIL)
    assert caught.value.delay == timedelta(seconds=expected)


@pytest.mark.parametrize(
    "fixture",
    [
        "resend/error_422_invalid_parameter.json",
        "resend/error_422_missing_required_field.json",
        "resend/error_401_missing_api_key.json",
    ],
)
async def test_validation_and_auth_errors_are_not_retried(
    resend_fake: RunningFake, fixture: str
) -> None:
    """4xx validation and auth answers are NonRetryableError with Resend's message."""
    status = json.loads((resend_fake.app.fixtures_dir / fixture).read_text())["statusCode"]
    resend_fake.control.script(status=status, fixture=fixture)
    async with resend_sender(resend_fake) as sender:
        with pytest.raises(NonRetryableError) as caught:
            await sender.send(EMAIL)
    assert str(status) in str(caught.value)


async def test_server_errors_and_unreachable_are_retryable(
    resend_fake: RunningFake, canary: object
) -> None:
    """A 500 or a refused connection is an UpstreamError the engine retries."""
    resend_fake.control.script(
        status=500, json={"statusCode": 500, "name": "application_error", "message": "oops"}
    )
    async with resend_sender(resend_fake) as sender:
        with pytest.raises(UpstreamError) as caught:
            await sender.send(EMAIL)
    assert not isinstance(caught.value, NonRetryableError)
    env = {"RESEND_API_KEY": RESEND_KEY, "RESEND_API_URL": "http://127.0.0.1:9"}
    async with ResendEmailSender(load_settings(EmailSettings, env)) as sender:
        with pytest.raises(UpstreamError):
            await sender.send(EMAIL)


async def test_bad_input_is_refused_before_sending(resend_fake: RunningFake) -> None:
    """A malformed recipient or an empty/oversized key is NonRetryableError and sends nothing."""
    async with resend_sender(resend_fake) as sender:
        for bad in (
            OutgoingEmail(to="not-an-address", subject="s", html="h", idempotency_key="k"),
            OutgoingEmail(to="a@example.com", subject="s", html="h", idempotency_key=""),
            OutgoingEmail(to="a@example.com", subject="s", html="h", idempotency_key="k" * 257),
        ):
            with pytest.raises(NonRetryableError):
                await sender.send(bad)
    assert resend_fake.control.requests() == []


async def test_outbox_writes_one_file_per_message(tmp_path: Path) -> None:
    """Without a key, each email becomes one HTML file with headers; a repeat rewrites nothing."""
    sender = create_email_sender(
        load_settings(EmailSettings, {"EMAIL_OUTBOX_DIR": str(tmp_path / "outbox")})
    )
    assert isinstance(sender, OutboxEmailSender)
    first = await sender.send(EMAIL)
    again = await sender.send(EMAIL)
    await sender.send(
        OutgoingEmail(
            to="b@example.com", subject="Resume ready", html="<p>ok</p>", idempotency_key="r-1"
        )
    )
    files = sorted((tmp_path / "outbox").glob("*.html"))
    assert len(files) == 2
    assert (
        first == again and first.provider == "offline" and first.message_id.startswith("offline-")
    )
    page = next(f for f in files if f.name.startswith("your-weekly")).read_text()
    assert (
        "To: jordan@example.com" in page
        and "Idempotency-Key: weekly-summary:user-1:2026-W48" in page
    )
    assert "&lt;h1&gt;3 jobs&lt;/h1&gt;" in page  # the body, escaped into the iframe's srcdoc
    assert "not sent" in page
