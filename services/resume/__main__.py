"""`python -m services.resume`: the resume-generation worker.

Environment: NATS_URL, DATABASE_URL or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY,
ANTHROPIC_API_KEY (none → the offline stand-in), RESEND_API_KEY (none → outbox folder),
RESUME_CONCURRENCY (default 5, across all replicas), RESUME_RETRY_DELAY (first LLM retry
wait, seconds), APP_URL (links in emails); with Claude also LLM_BUDGETS, LLM_BUDGET_PERIOD,
LLM_BUDGET_POLICY, LLM_PRICES and RATE_LIMITS' anthropic_* limits (shared/ai/budget.py).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping

import msgspec

from services.resume.steps import ResumeDeps
from services.resume.workflows import resume_generation
from shared.ai import AISettings, create_ai
from shared.ai.accounting import open_accounting
from shared.config import load_settings
from shared.db import open_repository
from shared.email import EmailSettings, create_email_sender
from shared.errors import ConfigError
from shared.service import run_service
from shared.workflow import Registry


class ResumeSettings(msgspec.Struct, frozen=True, kw_only=True):
    resume_concurrency: int = 5
    # First wait (seconds) before retrying an LLM call; later waits grow from it.
    resume_retry_delay: float = 5.0
    app_url: str = ""


@contextlib.asynccontextmanager
async def open_deps(environ: Mapping[str, str]) -> AsyncIterator[ResumeDeps]:
    settings = load_settings(ResumeSettings, environ)
    ai = create_ai(load_settings(AISettings, environ))
    async with (
        open_repository(environ) as repo,
        ai,
        create_email_sender(load_settings(EmailSettings, environ)) as mailer,
        open_accounting(ai, environ, "resume") as budgets,
    ):
        yield ResumeDeps(
            repo=repo,
            ai=ai,
            mailer=mailer,
            app_url=settings.app_url,
            retry_delay=settings.resume_retry_delay,
            budgets=budgets,
        )


def main() -> int:
    try:
        settings = load_settings(ResumeSettings, os.environ)
    except ConfigError as exc:
        print(f"resume: configuration error: {exc}", file=sys.stderr)
        return 2
    registry = Registry([resume_generation.with_options(concurrency=settings.resume_concurrency)])
    return run_service("resume", registry, open_deps)


if __name__ == "__main__":
    sys.exit(main())
