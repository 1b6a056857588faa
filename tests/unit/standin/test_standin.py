"""The offline stand-in, read by the real GitHub client and the real board adapters."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

import shared.sources  # noqa: F401 - registers every board
from shared.config import load_settings
from shared.demo import GITHUB_HANDLE
from shared.sources.fetch import PoliteFetcher
from shared.sources.github import GitHub, GitHubNotFoundError, GitHubSettings, parse_link_header
from shared.sources.registry import DEFAULT_SOURCES, BoardSettings, configured_boards
from shared.standin import BOARDS, make_server, upstream_env

UA = {"user-agent": "HowlerHire-test/1 (+https://example.com)"}


@pytest.fixture(scope="module")
def standin() -> Iterator[str]:
    server = make_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class MemoryCache:
    def __init__(self) -> None:
        self.items: dict[str, object] = {}

    async def get(self, key: str):  # type: ignore[no-untyped-def]
        return self.items.get(key)

    async def put(self, key: str, value: object) -> None:
        self.items[key] = value


async def test_the_demo_github_user_repos_and_readmes_through_the_real_client(standin: str):
    settings = load_settings(GitHubSettings, upstream_env(standin))
    cache = MemoryCache()
    async with httpx.AsyncClient(headers=UA) as client:
        github = GitHub(settings, client, cache=cache)
        user = await github.get_user(GITHUB_HANDLE)
        assert (user.login, user.type, user.public_repos) == (GITHUB_HANDLE, "User", 4)
        repos = await github.list_repos(GITHUB_HANDLE)
        # The fork is dropped by the client; most recently pushed first.
        assert [r.name for r in repos] == ["jetstream-jobs", "pg-outbox", "engine-dashboard"]
        readme = await github.get_readme(f"{GITHUB_HANDLE}/jetstream-jobs")
        assert readme is not None and "NATS JetStream" in readme and "asyncio" in readme
        assert await github.get_readme(f"{GITHUB_HANDLE}/engine-dashboard") is None
        with pytest.raises(GitHubNotFoundError):
            await github.get_user("no-such-person-here")
        # A second read is conditional: answered 304 (free), served from the cache.
        with GitHub.counting() as charged:
            again = await github.get_user(GITHUB_HANDLE)
            await github.list_repos(GITHUB_HANDLE)
        assert again == user
        assert charged[0] == 0


async def test_repositories_paginate_with_link_headers(standin: str):
    url: str | None = f"{standin}/github/users/{GITHUB_HANDLE}/repos?per_page=1&sort=pushed"
    names = []
    async with httpx.AsyncClient() as client:
        while url:
            response = await client.get(url)
            assert response.status_code == 200
            names += [r["name"] for r in response.json()]
            links = parse_link_header(response.headers.get("link", ""))
            url = links.get("next")
            if url:
                assert links["last"].endswith("page=4")
    assert names == ["jetstream-jobs", "pg-outbox", "engine-dashboard", "cpython"]


async def test_every_default_board_reads_its_sample_and_some_match_python(standin: str):
    assert set(DEFAULT_SOURCES.split(",")) == set(BOARDS)
    settings = load_settings(BoardSettings, upstream_env(standin))
    async with httpx.AsyncClient(headers=UA) as client:
        fetcher = PoliteFetcher(client, timeout=10)
        for board in configured_boards(settings):
            listing = await board.fetch(fetcher)
            assert listing.warnings == (), board.name
            assert len(listing.postings) >= 2, board.name
            assert all(p.title and p.url.startswith("https://") for p in listing.postings)
            pythonic = [p for p in listing.postings if "python" in p.description.lower()]
            assert pythonic, f"{board.name} has no Python job for the demo user"
            if board.name == "remoteok":  # the legal notice is not a job
                assert len(listing.postings) == 3
                assert listing.postings[0].salary is not None


async def test_unknown_paths_answer_404_and_writes_are_refused(standin: str):
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{standin}/nowhere")).status_code == 404
        gh = await client.get(f"{standin}/github/repos/{GITHUB_HANDLE}/nope/readme")
        assert gh.status_code == 404 and gh.json()["message"] == "Not Found"
        assert (await client.post(f"{standin}/remoteok/api")).status_code == 405


def test_it_listens_on_loopback_only():
    with pytest.raises(OSError, match="loopback"):
        make_server("0.0.0.0", 0)
