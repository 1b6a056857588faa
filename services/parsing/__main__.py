"""`python -m services.parsing`: the resume-parsing and profile-sync worker.

Environment: NATS_URL, DATABASE_URL or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY;
files from Supabase Storage when SUPABASE_URL (+ key) is set, else from STORAGE_DIR
(default var/storage, bucket folder `resumes/`); ANTHROPIC_API_KEY (none → the offline
stand-in); GITHUB_TOKEN (optional), GITHUB_API_URL; PARSING_RETRY_DELAY (first LLM retry
wait, seconds), RESUME_PARSING_CONCURRENCY / PROFILE_SYNC_CONCURRENCY (across replicas).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Annotated

import httpx
from msgspec import Meta

from services.parsing.memo import KVMemo
from services.parsing.pool import exit_with_parent
from services.parsing.steps import FileStore, ParsingDeps
from services.parsing.workflows import profile_sync, resume_parsing
from shared.ai import AISettings, create_ai
from shared.ai.accounting import open_accounting
from shared.config import EngineSettings, Settings, load_settings
from shared.db import open_repository
from shared.errors import ConfigError
from shared.filestore import LocalResumeStorage, LocalStorageSettings
from shared.http import HttpSettings, create_http_client
from shared.service import run_service
from shared.sources.github import GitHub, GitHubSettings
from shared.storage import ResumeStorage, StorageSettings
from shared.workflow import Registry


class ParsingSettings(Settings, frozen=True, kw_only=True):
    # First wait (seconds) before retrying an LLM call; later waits grow from it.
    parsing_retry_delay: float = 5.0
    resume_parsing_concurrency: int | None = None
    profile_sync_concurrency: int | None = None
    # How many of the top repositories' READMEs profile-sync reads, and how much of each.
    github_readme_repos: int = 5
    github_readme_chars: int = 6000
    # Processes extracting PDF/DOCX text (CPU-bound, off the event loop).
    parsing_extract_processes: Annotated[int, Meta(ge=1, le=32)] = 2


def open_storage(environ: Mapping[str, str], client: httpx.AsyncClient) -> FileStore:
    """Supabase Storage when SUPABASE_URL is set (its key then required), else a folder."""
    if environ.get("SUPABASE_URL"):
        settings = load_settings(StorageSettings, environ, required=("supabase_service_role_key",))
        return ResumeStorage(settings, client)
    return LocalResumeStorage(load_settings(LocalStorageSettings, environ))


@contextlib.asynccontextmanager
async def open_deps(environ: Mapping[str, str]) -> AsyncIterator[ParsingDeps]:
    settings = load_settings(ParsingSettings, environ)
    engine = load_settings(EngineSettings, environ)
    ai = create_ai(load_settings(AISettings, environ))
    memo = KVMemo(engine.nats_url, engine.howlerhire_namespace, replicas=engine.nats_replicas)
    # Extraction in separate processes ("spawn": no fork of a process with threads).
    extractor = ProcessPoolExecutor(
        max_workers=settings.parsing_extract_processes,
        mp_context=get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(os.getpid(),),
    )
    async with (
        open_repository(environ) as repo,
        ai,
        create_http_client(load_settings(HttpSettings, environ)) as client,
        open_accounting(ai, environ, "parsing") as budgets,
    ):
        try:
            yield ParsingDeps(
                repo=repo,
                ai=ai,
                storage=open_storage(environ, client),
                github=GitHub(load_settings(GitHubSettings, environ), client, cache=memo),
                memo=memo,
                extractor=extractor,
                readme_repos=settings.github_readme_repos,
                readme_chars=settings.github_readme_chars,
                budgets=budgets,
            )
        finally:
            await memo.aclose()
            extractor.shutdown(wait=False, cancel_futures=True)


def main() -> int:
    try:
        settings = load_settings(ParsingSettings, os.environ)
    except ConfigError as exc:
        print(f"parsing: configuration error: {exc}", file=sys.stderr)
        return 2
    registry = Registry(
        [
            resume_parsing(settings.resume_parsing_concurrency, settings.parsing_retry_delay),
            profile_sync(settings.profile_sync_concurrency, settings.parsing_retry_delay),
        ]
    )
    return run_service("parsing", registry, open_deps)


if __name__ == "__main__":
    sys.exit(main())
