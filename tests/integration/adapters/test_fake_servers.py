"""The fakes run as separate processes and are commanded over their control endpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.email import EmailSettings, OutgoingEmail, ResendEmailSender
from shared.errors import RetryAfterError
from tests.integration.adapters.conftest import RESEND_KEY
from tests.support.fakes import FakeControl

REPO = Path(__file__).resolve().parents[3]


def start(kind: str, fixtures_dir: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fakes", kind, "--fixtures", str(fixtures_dir)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    wanted = {"READY", "CONTROL"} if kind == "canary" else {"READY"}
    urls: dict[str, str] = {}
    for line in process.stdout:
        word, _, url = line.strip().partition(" ")
        urls[word] = url
        if wanted <= urls.keys():
            break
    return process, urls


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=20)
    if process.stdout:
        process.stdout.close()


async def test_resend_fake_in_another_process(fixtures_dir: Path) -> None:
    """A Resend fake process takes scripted 429s and reports sends per idempotency key."""
    process, urls = start("resend", fixtures_dir)
    try:
        control = FakeControl(urls["READY"])
        control.fail_next(
            1,
            429,
            retry_after=2,
            json={"statusCode": 429, "name": "rate_limit_exceeded", "message": "slow"},
        )
        settings = EmailSettings(resend_api_key=RESEND_KEY, resend_api_url=urls["READY"])
        email = OutgoingEmail(
            to="a@example.com", subject="s", html="h", idempotency_key="week-1:user-1"
        )
        async with ResendEmailSender(settings) as sender:
            with pytest.raises(RetryAfterError):  # the scripted 429
                await sender.send(email)
            await sender.send(email)
            await sender.send(email)
        stats = control.stats()
        assert stats["by_idempotency_key"] == {"week-1:user-1": 2}
        assert stats["deliveries"] == 1
        assert len(control.requests("/emails")) == 3
        control.close()
    finally:
        stop(process)
    assert process.returncode == 0


async def test_canary_in_another_process_reports_connections(fixtures_dir: Path) -> None:
    """A canary process counts connections to its trap port and reports them on its control port."""
    process, urls = start("canary", fixtures_dir)
    try:
        control = FakeControl(urls["CONTROL"])
        assert control.stats() == {"connections": 0}
        async with httpx.AsyncClient() as client:
            await client.get(urls["READY"])
        assert control.stats() == {"connections": 1}
        control.reset()
        assert control.stats() == {"connections": 0}
        control.close()
    finally:
        stop(process)
