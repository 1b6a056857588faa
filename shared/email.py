"""Sending email: Resend (async, one Idempotency-Key per logical email) or an outbox folder.

```python
sender = create_email_sender(load_settings(EmailSettings, os.environ))
sent = await sender.send(OutgoingEmail(to="a@b.c", subject=..., html=..., idempotency_key=...))
sent.message_id
```

`send_batch` sends up to 100 emails in one call (Resend's `POST /emails/batch`, one
Idempotency-Key for the whole chunk, permissive validation so one bad address does not
hold back the rest) and reports an outcome per email, in order.

Without RESEND_API_KEY the offline stand-in writes each message as one HTML file (headers
on top, the body below) into EMAIL_OUTBOX_DIR, so a developer can open it in a browser.
The same idempotency key always maps to the same file and message id, as with Resend.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from shared.config import Settings
from shared.errors import NonRetryableError, UpstreamError
from shared.http import PROVIDERS, classify, error_for, redact, safe_cause

if TYPE_CHECKING:
    from resend.exceptions import ResendError

__all__ = [
    "MAX_BATCH",
    "BatchOutcome",
    "EmailSender",
    "EmailSettings",
    "OutboxEmailSender",
    "OutgoingEmail",
    "ResendEmailSender",
    "SentEmail",
    "create_email_sender",
]

log = logging.getLogger(__name__)

MAX_BATCH = 100  # Resend's batch endpoint takes up to 100 emails a call
MAX_IDEMPOTENCY_KEY = 256  # Resend's limit (OpenAPI: Idempotency-Key maxLength 256)
_ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


class EmailSettings(Settings, frozen=True, kw_only=True):
    """Env: RESEND_API_KEY (none → outbox folder), RESEND_API_URL, EMAIL_FROM, EMAIL_OUTBOX_DIR."""

    resend_api_key: str | None = None
    resend_api_url: str = "https://api.resend.com"
    email_from: str = "HowlerHire <notifications@howlerhire.local>"
    email_outbox_dir: str = "var/outbox"
    email_timeout: Annotated[float, Meta(gt=0)] = 30.0
    # Delay asked of the engine on a 429 without retry-after (per-second limit: short).
    email_default_retry_after: Annotated[float, Meta(gt=0)] = 2.0


class OutgoingEmail(msgspec.Struct, frozen=True, kw_only=True):
    """One logical email. The idempotency key names it: e.g. `weekly-summary:<user>:<week>`."""

    to: str | list[str]
    subject: str
    html: str
    idempotency_key: str
    text: str | None = None
    reply_to: str | None = None
    tags: dict[str, str] = msgspec.field(default_factory=dict)
    # Extra MIME headers, e.g. List-Unsubscribe (RFC 8058) for bulk mail.
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    # Whose email it is: the outbox marks its file with a digest of it, so erasure
    # (shared/erasure.py) finds a user's emails. Never sent to a provider.
    user_id: str | None = None


class BatchOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """One email of a batch: its message id, or why the provider refused that email."""

    message_id: str | None = None
    error: str | None = None


class SentEmail(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str
    provider: str  # "resend" or "offline"


class EmailSender:
    """The interface both senders share."""

    provider: str

    async def send(self, email: OutgoingEmail) -> SentEmail:
        raise NotImplementedError

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> list[BatchOutcome]:
        """Send up to MAX_BATCH emails as one request; the outcome of each, in order.

        The same key with the same emails is the same request (the provider answers with
        the first call's ids); an email refused on its own is reported, not raised.
        Failures of the whole call raise as `send` does.
        """
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> EmailSender:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _validate(email: OutgoingEmail) -> list[str]:
    recipients = [email.to] if isinstance(email.to, str) else list(email.to)
    if not recipients or not all(_ADDRESS.match(r.strip()) for r in recipients):
        raise NonRetryableError("email: the recipient address is missing or malformed")
    if not email.subject.strip():
        raise NonRetryableError("email: the subject is empty")
    key = email.idempotency_key
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise NonRetryableError(
            f"email: the idempotency key must be 1..{MAX_IDEMPOTENCY_KEY} characters"
        )
    return [r.strip() for r in recipients]


def _check_batch(emails: Sequence[OutgoingEmail], idempotency_key: str) -> None:
    if not 1 <= len(emails) <= MAX_BATCH:
        raise NonRetryableError(f"email: a batch holds 1..{MAX_BATCH} emails, not {len(emails)}")
    if not idempotency_key or len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise NonRetryableError(
            f"email: the idempotency key must be 1..{MAX_IDEMPOTENCY_KEY} characters"
        )


class ResendEmailSender(EmailSender):
    """Resend through its SDK's async API (`Emails.send_async`) with an Idempotency-Key.

    The resend package keeps its key, base URL and async transport in module globals; we
    set them right before each call. Nothing awaits between setting them and the SDK
    building the request, so concurrent sends in one event loop cannot mix them up.
    """

    provider = "resend"

    def __init__(self, settings: EmailSettings) -> None:
        if not settings.resend_api_key:
            raise ValueError("ResendEmailSender needs RESEND_API_KEY")
        self._settings = settings
        # The SDK (and the `requests` it pulls in) is imported only here, with a key:
        # ~0.1 s of every cold start of a service that sends no email through Resend.
        from shared.resend_transport import SharedHttpxClient

        self._transport = SharedHttpxClient(settings.email_timeout)

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _params(self, email: OutgoingEmail, recipients: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "from": self._settings.email_from,
            "to": recipients,
            "subject": email.subject,
            "html": email.html,
        }
        if email.text:
            params["text"] = email.text
        if email.reply_to:
            params["reply_to"] = email.reply_to
        if email.tags:
            params["tags"] = [{"name": k, "value": v} for k, v in email.tags.items()]
        if email.headers:
            params["headers"] = dict(email.headers)
        return params

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> list[BatchOutcome]:
        _check_batch(emails, idempotency_key)
        outcomes: list[BatchOutcome | None] = [None] * len(emails)
        batch: list[dict[str, Any]] = []
        positions: list[int] = []
        for index, email in enumerate(emails):
            try:
                recipients = _validate(email)
            except NonRetryableError as exc:
                outcomes[index] = BatchOutcome(error=str(exc))
                continue
            batch.append(self._params(email, recipients))
            positions.append(index)
        if batch:
            import resend
            from resend.exceptions import ResendError

            resend.api_key = self._settings.resend_api_key
            resend.api_url = self._settings.resend_api_url.rstrip("/")
            resend.default_async_http_client = self._transport
            try:
                response = await resend.Batch.send_async(
                    batch,  # type: ignore[arg-type]
                    {"idempotency_key": idempotency_key, "batch_validation": "permissive"},
                )
            except ResendError as exc:
                raise self._error(exc) from safe_cause(exc, [self._settings.resend_api_key])
            self._fill(outcomes, positions, response)
        log.info("email batch of %d sent through Resend (key %s)", len(emails), idempotency_key)
        return [o if o is not None else BatchOutcome(error="no outcome") for o in outcomes]

    @staticmethod
    def _fill(outcomes: list[BatchOutcome | None], positions: list[int], response: Any) -> None:
        """Map Resend's permissive answer onto the emails: `errors` name indexes of the
        request; `data` holds the ids of the others, in order."""
        body = response if isinstance(response, dict) else {}
        errors = {
            int(e["index"]): str(e.get("message") or "refused")
            for e in body.get("errors") or []
            if isinstance(e, dict) and isinstance(e.get("index"), int)
        }
        ids = iter(d.get("id") for d in body.get("data") or [] if isinstance(d, dict))
        for sent_index, position in enumerate(positions):
            if sent_index in errors:
                outcomes[position] = BatchOutcome(error=f"Resend: {errors[sent_index]}")
                continue
            message_id = next(ids, None)
            outcomes[position] = (
                BatchOutcome(message_id=str(message_id))
                if message_id
                else BatchOutcome(error="Resend returned no message id for this email")
            )

    async def send(self, email: OutgoingEmail) -> SentEmail:
        recipients = _validate(email)
        params = self._params(email, recipients)
        import resend
        from resend.exceptions import ResendError

        resend.api_key = self._settings.resend_api_key
        resend.api_url = self._settings.resend_api_url.rstrip("/")
        resend.default_async_http_client = self._transport
        try:
            response = await resend.Emails.send_async(
                params,  # type: ignore[arg-type]
                {"idempotency_key": email.idempotency_key},
            )
        except ResendError as exc:
            raise self._error(exc) from safe_cause(exc, [self._settings.resend_api_key])
        message_id = response.get("id") if isinstance(response, dict) else None
        if not message_id:
            raise UpstreamError("Resend accepted the email but returned no message id")
        log.info("email sent through Resend: id %s", message_id)
        return SentEmail(message_id=str(message_id), provider=self.provider)

    def _error(self, exc: ResendError) -> Exception:
        try:
            status = int(exc.code)
        except (TypeError, ValueError):
            status = 500
        kind = exc.error_type or "error"
        detail = redact(" ".join(str(exc.message).split())[:300], [self._settings.resend_api_key])
        message = f"Resend: {status} {kind}: {detail}" if status else f"Resend: {detail}"
        # Resend's quota kinds and its idempotency conflict are rows of the table.
        verdict = classify(
            status,
            exc.headers or {},
            PROVIDERS["resend"],
            kind=kind,
            default_retry_after=self._settings.email_default_retry_after,
        )
        return error_for(verdict, message)


# The outbox file's header naming (as a digest) the user an email is for.
OUTBOX_USER_HEADER = "X-Howlerhire-User"


class OutboxEmailSender(EmailSender):
    """The offline stand-in: one HTML file per message in a folder."""

    provider = "offline"

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        self.outbox = Path(settings.email_outbox_dir)
        log.warning(
            "RESEND_API_KEY is not set: emails are written to %s (offline stand-in), not sent",
            self.outbox,
        )

    async def send(self, email: OutgoingEmail) -> SentEmail:
        recipients = _validate(email)
        digest = hashlib.sha256(email.idempotency_key.encode()).hexdigest()
        message_id = f"offline-{digest[:32]}"
        path = await asyncio.to_thread(self._write, email, recipients, message_id, digest)
        log.info("email written to the outbox (offline stand-in): %s", path)
        return SentEmail(message_id=message_id, provider=self.provider)

    async def send_batch(
        self, emails: Sequence[OutgoingEmail], idempotency_key: str
    ) -> list[BatchOutcome]:
        _check_batch(emails, idempotency_key)
        outcomes = []
        for email in emails:
            try:
                sent = await self.send(email)
            except NonRetryableError as exc:
                outcomes.append(BatchOutcome(error=str(exc)))
            else:
                outcomes.append(BatchOutcome(message_id=sent.message_id))
        return outcomes

    def _write(
        self, email: OutgoingEmail, recipients: list[str], message_id: str, digest: str
    ) -> Path:
        self.outbox.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", email.subject.lower()).strip("-")[:40] or "email"
        path = self.outbox / f"{slug}-{digest[:16]}.html"
        if path.exists():
            return path  # same logical email: already "sent"
        headers = {
            "Message-Id": message_id,
            "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
            "From": self._settings.email_from,
            "To": ", ".join(recipients),
            "Subject": email.subject,
            "Idempotency-Key": email.idempotency_key,
            "X-Offline-Stand-In": "yes: this email was not sent",
        }
        if email.reply_to:
            headers["Reply-To"] = email.reply_to
        headers.update(email.headers)
        if email.user_id:
            from shared.workflow.store import user_token

            headers[OUTBOX_USER_HEADER] = user_token(email.user_id)
        rows = "\n".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
            for k, v in headers.items()
        )
        body = html.escape(email.html, quote=True)
        text = (
            "<details><summary>plain text</summary><pre>"
            f"{html.escape(email.text)}</pre></details>\n"
            if email.text
            else ""
        )
        comment = "\n".join(f"{k}: {v}" for k, v in headers.items()).replace("--", "- -")
        document = (
            f'<!DOCTYPE html>\n<!--\n{comment}\n-->\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(email.subject)}</title></head><body>\n"
            f'<table style="font:13px monospace;border-collapse:collapse">{rows}</table>\n<hr>\n'
            f'<iframe style="width:100%;height:80vh;border:0" srcdoc="{body}"></iframe>\n'
            f"{text}"
            "</body></html>\n"
        )
        fd, tmp = tempfile.mkstemp(dir=self.outbox, prefix=".tmp-", suffix=".html")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(document)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def create_email_sender(settings: EmailSettings) -> ResendEmailSender | OutboxEmailSender:
    """Resend if a key is configured, else the outbox folder (which logs that it is one)."""
    if settings.resend_api_key:
        return ResendEmailSender(settings)
    return OutboxEmailSender(settings)
