"""`python -m services.notify`: the weekly-summary (and email-unsubscribe) worker.

Environment: NATS_URL, DATABASE_URL or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY,
UNSUBSCRIBE_SECRET (required: it signs the one-click unsubscribe links), UNSUBSCRIBE_URL
(the gateway's public /unsubscribe), RESEND_API_KEY (none → outbox folder),
RESEND_RATE_LIMIT (requests/s this process sends at most; Resend's default is 2 per
team), NOTIFY_CHUNK_SIZE (emails per batch call, ≤ 100), APP_URL (links in the email).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping

from services.notify.steps import NotifyDeps, Pacer
from services.notify.workflows import workflows
from shared.config import Settings, load_settings
from shared.db import open_repository
from shared.email import MAX_BATCH, EmailSettings, create_email_sender
from shared.errors import ConfigError
from shared.service import run_service
from shared.unsubscribe import UnsubscribeLinks, UnsubscribeSettings
from shared.workflow import Registry


class NotifySettings(Settings, frozen=True, kw_only=True):
    app_url: str = ""
    notify_chunk_size: int = MAX_BATCH
    resend_rate_limit: float = 2.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.notify_chunk_size <= MAX_BATCH:
            raise ConfigError(f"NOTIFY_CHUNK_SIZE must be between 1 and {MAX_BATCH}")
        if self.resend_rate_limit <= 0:
            raise ConfigError("RESEND_RATE_LIMIT must be a positive number of requests/s")


def _links(environ: Mapping[str, str]) -> UnsubscribeLinks:
    settings = load_settings(UnsubscribeSettings, environ, required=("unsubscribe_secret",))
    return UnsubscribeLinks(settings)


@contextlib.asynccontextmanager
async def open_deps(environ: Mapping[str, str]) -> AsyncIterator[NotifyDeps]:
    settings = load_settings(NotifySettings, environ)
    links = _links(environ)
    async with (
        open_repository(environ) as repo,
        create_email_sender(load_settings(EmailSettings, environ)) as mailer,
    ):
        yield NotifyDeps(
            repo=repo,
            mailer=mailer,
            links=links,
            app_url=settings.app_url,
            chunk_size=settings.notify_chunk_size,
            pacer=Pacer(settings.resend_rate_limit),
        )


def main() -> int:
    try:
        load_settings(NotifySettings, os.environ)
        _links(os.environ)
    except ConfigError as exc:
        print(f"notify: configuration error: {exc}", file=sys.stderr)
        return 2
    return run_service("notify", Registry(workflows()), open_deps)


if __name__ == "__main__":
    sys.exit(main())
