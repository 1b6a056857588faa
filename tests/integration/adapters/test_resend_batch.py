"""Batch sending: one POST /emails/batch per chunk with its Idempotency-Key, per-email
outcomes, Resend's 2 requests/s, and the outbox stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config import load_settings
from shared.email import EmailSettings, OutboxEmailSender, OutgoingEmail, create_email_sender
from shared.errors import NonRetryableError, RetryAfterError
from tests.integration.adapters.test_resend import resend_sender
from tests.support.fakes import RunningFake


def emails(n: int, prefix: str = "u") -> list[OutgoingEmail]:
    return [
        OutgoingEmail(
            to=f"{prefix}{i}@example.com",
            subject="Your Weekly Job Search Summary",
            html=f"<p>{i}</p>",
            text=f"{i}",
            idempotency_key=f"weekly-summary:{prefix}{i}:2026-W48",
            headers={"List-Unsubscribe": f"<https://x.test/u?token={i}>"},
        )
        for i in range(n)
    ]


async def test_a_batch_is_one_request_with_per_email_outcomes(resend_fake: RunningFake) -> None:
    """Three emails, one refused by Resend: one request (key, permissive), ids for two, the
    reason for the third; the same batch again sends nothing new and returns the same ids."""
    resend_fake.control.call("POST", "configure", json={"reject": ["u1@example.com"]})
    batch = emails(3)
    async with resend_sender(resend_fake) as sender:
        first = await sender.send_batch(batch, "weekly-summary:2026-W48:run:0")
        again = await sender.send_batch(batch, "weekly-summary:2026-W48:run:0")
    assert [o.message_id is not None for o in first] == [True, False, True]
    assert first[1].error is not None and "Invalid `to`" in first[1].error
    assert again == first
    [request, _] = resend_fake.control.requests("/emails/batch")
    assert request["headers"]["idempotency-key"] == "weekly-summary:2026-W48:run:0"
    assert request["headers"]["x-batch-validation"] == "permissive"
    body = json.loads(request["body"])
    assert [e["to"] for e in body] == [[f"u{i}@example.com"] for i in range(3)]
    assert body[0]["headers"] == {"List-Unsubscribe": "<https://x.test/u?token=0>"}
    assert body[0]["text"] == "0"
    stats = resend_fake.control.stats()
    assert stats["deliveries"] == 2 and stats["by_idempotency_key"] == {
        "weekly-summary:2026-W48:run:0": 2
    }
    # After 24 h Resend forgets the key: the same call sends again (our own record must
    # guard beyond that).
    resend_fake.control.call("POST", "forget-keys")
    async with resend_sender(resend_fake) as sender:
        await sender.send_batch(batch, "weekly-summary:2026-W48:run:0")
    assert resend_fake.control.stats()["deliveries"] == 4


async def test_batch_limits_and_malformed_addresses(resend_fake: RunningFake) -> None:
    """More than 100 emails is refused before sending; a malformed address is reported for
    that email alone and never reaches Resend."""
    async with resend_sender(resend_fake) as sender:
        with pytest.raises(NonRetryableError, match=r"1\.\.100"):
            await sender.send_batch(emails(101), "k")
        mixed = [*emails(1), OutgoingEmail(to="nope", subject="s", html="h", idempotency_key="x")]
        outcomes = await sender.send_batch(mixed, "k2")
    assert outcomes[0].message_id and outcomes[1].error and "malformed" in outcomes[1].error
    [request] = resend_fake.control.requests("/emails/batch")
    assert len(json.loads(request["body"])) == 1


async def test_over_two_requests_per_second_is_a_retry_after(resend_fake: RunningFake) -> None:
    """The fake's team limit: a third call within a second is 429 with Resend's body and
    headers, raised as RetryAfterError with its wait."""
    resend_fake.control.call("POST", "configure", json={"rate_limit": 2})
    async with resend_sender(resend_fake) as sender:
        await sender.send_batch(emails(1, "a"), "ka")
        await sender.send_batch(emails(1, "b"), "kb")
        with pytest.raises(RetryAfterError) as caught:
            await sender.send_batch(emails(1, "c"), "kc")
    assert "rate_limit_exceeded" in str(caught.value) and "2 requests per second" in str(
        caught.value
    )
    assert 1.0 <= caught.value.delay.total_seconds() <= 2.0
    [*_, limited] = resend_fake.control.requests("/emails/batch")
    stats = resend_fake.control.stats()
    assert stats["rate_limited"] == 1 and stats["deliveries"] == 2
    assert limited["headers"]["idempotency-key"] == "kc"


async def test_outbox_batch_writes_each_email(tmp_path: Path) -> None:
    """Without a key each email of a batch is one file, with its plain text and headers."""
    sender = create_email_sender(
        load_settings(EmailSettings, {"EMAIL_OUTBOX_DIR": str(tmp_path / "outbox")})
    )
    assert isinstance(sender, OutboxEmailSender)
    outcomes = await sender.send_batch(emails(3), "batch-key")
    assert all(o.message_id and o.message_id.startswith("offline-") for o in outcomes)
    files = sorted((tmp_path / "outbox").glob("*.html"))
    assert len(files) == 3
    page = files[0].read_text()
    assert "List-Unsubscribe" in page and "plain text" in page
