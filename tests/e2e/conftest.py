"""Fixtures of the end-to-end tests that several modules share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.parsing_stack import Stack, open_stack


@pytest.fixture
async def parsing(
    nats_url: str, prefix: str, database_url: str, fixtures_dir: Path, tmp_path: Path
) -> AsyncIterator[Stack]:
    """Gateway + fakes, ready for parsing services started by the test."""
    async with open_stack(nats_url, prefix, database_url, fixtures_dir, tmp_path) as stack:
        yield stack
