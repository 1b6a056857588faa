"""No secret in messages, tracebacks, logs or outputs when every stub fails (RELIABILITY S7)."""

from __future__ import annotations

import logging
import traceback

import httpx
import msgspec
import pytest

from shared.ai import AISettings, ClaudeAI, JobPosting
from shared.email import EmailSettings, OutgoingEmail, ResendEmailSender
from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.logs import RUN, JsonFormatter, RunFields, TextFormatter
from shared.sources import GitHub, GitHubSettings
from shared.storage import ResumeStorage, StorageSettings
from tests.integration.adapters.conftest import ANTHROPIC_KEY, GITHUB_TOKEN, RESEND_KEY, SECRETS
from tests.support.fakes import SERVICE_KEY, RunningFake

ALL_SECRETS = (*SECRETS, SERVICE_KEY)


def leaks(text: str) -> list[str]:
    return [secret for secret in ALL_SECRETS if secret in text]


def formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc)


async def test_no_secret_in_errors_or_logs_when_stubs_fail(
    anthropic_fake: RunningFake,
    resend_fake: RunningFake,
    github_fake: RunningFake,
    storage_fake: RunningFake,
    http_client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """401s, 500s, 429s and timeouts — upstreams even echoing the key — leak no secret anywhere."""
    caplog.set_level(logging.DEBUG)
    failures: list[BaseException] = []
    ai = ClaudeAI(
        AISettings(
            anthropic_api_key=ANTHROPIC_KEY,
            anthropic_base_url=anthropic_fake.url,
            anthropic_timeout=0.5,
        )
    )
    mail = ResendEmailSender(
        EmailSettings(resend_api_key=RESEND_KEY, resend_api_url=resend_fake.url, email_timeout=0.5)
    )
    hub = GitHub(
        GitHubSettings(github_api_url=github_fake.url, github_token=GITHUB_TOKEN), http_client
    )
    store = ResumeStorage(
        StorageSettings(
            supabase_url=storage_fake.url,
            supabase_service_role_key=SERVICE_KEY,
            storage_timeout=0.5,
        ),
        http_client,
    )
    job = JobPosting(title="x", description="y")
    email = OutgoingEmail(to="a@example.com", subject="s", html="h", idempotency_key="k")

    def echo(secret: str) -> dict[str, object]:
        return {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"invalid x-api-key {secret}"},
        }

    scenarios = [
        (
            anthropic_fake,
            {"status": 401, "json": echo(ANTHROPIC_KEY)},
            lambda: ai.analyze_requirements(job),
        ),
        (
            anthropic_fake,
            {"status": 500, "json": echo(ANTHROPIC_KEY)},
            lambda: ai.analyze_requirements(job),
        ),
        (
            anthropic_fake,
            {"status": 429, "json": echo(ANTHROPIC_KEY), "headers": {"retry-after": "1"}},
            lambda: ai.analyze_requirements(job),
        ),
        (anthropic_fake, {"delay": 2.0, "text": "late"}, lambda: ai.analyze_requirements(job)),
        (
            resend_fake,
            {
                "status": 401,
                "json": {
                    "statusCode": 401,
                    "name": "invalid_api_key",
                    "message": f"bad key {RESEND_KEY}",
                },
            },
            lambda: mail.send(email),
        ),
        (
            resend_fake,
            {
                "status": 500,
                "json": {"statusCode": 500, "name": "application_error", "message": RESEND_KEY},
            },
            lambda: mail.send(email),
        ),
        (resend_fake, {"delay": 2.0, "json": {"id": "late"}}, lambda: mail.send(email)),
        (
            github_fake,
            {"status": 401, "json": {"message": f"Bad credentials {GITHUB_TOKEN}"}},
            lambda: hub.get_user("octocat"),
        ),
        (github_fake, {"status": 500, "body": GITHUB_TOKEN}, lambda: hub.get_user("octocat")),
        (
            storage_fake,
            {"status": 500, "body": SERVICE_KEY},
            lambda: store.download("u/a.pdf", file_type="pdf"),
        ),
        (
            storage_fake,
            {"status": 418, "body": SERVICE_KEY},
            lambda: store.download("u/a.pdf", file_type="pdf"),
        ),
        (
            storage_fake,
            {"delay": 2.0, "body": "late"},
            lambda: store.download("u/a.pdf", file_type="pdf"),
        ),
    ]
    # The typed error each failure is reported as: a refused key is not retried, a 5xx or
    # a timeout is an upstream error to retry, a 429 waits as told.
    expected: list[type[Exception]] = [
        NonRetryableError,
        UpstreamError,
        RetryAfterError,
        UpstreamError,
        NonRetryableError,
        UpstreamError,
        UpstreamError,
        NonRetryableError,
        UpstreamError,
        UpstreamError,
        NonRetryableError,
        UpstreamError,
    ]
    for (fake, script, call), kind in zip(scenarios, expected, strict=True):
        fake.control.script(**script)
        with pytest.raises(kind) as caught:
            await call()
        assert type(caught.value) is kind, (script, caught.value)
        failures.append(caught.value)
    await ai.aclose()
    await mail.aclose()

    assert len(failures) == len(scenarios)
    for exc in failures:
        assert leaks(formatted(exc)) == [], formatted(exc)
    assert leaks(caplog.text) == []
    # The same records as the services write them (LOG_FORMAT=json and text, inside a run).
    assert len(caplog.records) >= len(scenarios)
    token = RUN.set(("wf", "inst-1", 0))
    try:
        for record in caplog.records:
            RunFields("resume").filter(record)
            for formatter in (JsonFormatter(), TextFormatter()):
                line = formatter.format(record)
                assert leaks(line) == [], line
    finally:
        RUN.reset(token)
    for settings in (ai._settings, mail._settings, hub._settings, store._settings):
        assert leaks(repr(settings)) == [] and leaks(f"{settings}") == []
    assert leaks(msgspec.json.encode([str(e) for e in failures]).decode()) == []
