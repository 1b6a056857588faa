"""GitHub REST: a user, their own repositories, a repository's languages and README.

404 → NonRetryableError (GitHubNotFoundError) with a clear message; a rate limit (403/429
with `x-ratelimit-remaining: 0`, or a `retry-after`) → RetryAfterError until
`x-ratelimit-reset`, so the engine sleeps durably instead of hammering the API.
Pagination follows `Link: rel="next"`, but only on the configured API origin: a Link
elsewhere is not followed (it would carry our token to another host).

With a `ResponseCache`, every GET is conditional: the stored ETag goes out as
`If-None-Match`, and a 304 (which GitHub does not count against the rate limit) is
answered from the stored body, so a re-sync of an unchanged profile costs nothing.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import httpx
import msgspec

from shared.config import Settings
from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.http import MIN_DELAY, PROVIDERS, Verdict, classify, raise_for_status

__all__ = [
    "CachedResponse",
    "GitHub",
    "GitHubNotFoundError",
    "GitHubRepo",
    "GitHubSettings",
    "GitHubUser",
    "ResponseCache",
    "parse_link_header",
]

_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_REPO = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
MAX_PAGES = 10
MAX_README_CHARS = 100_000


class GitHubSettings(Settings, frozen=True, kw_only=True):
    """Env: GITHUB_API_URL, GITHUB_TOKEN (optional; raises the rate limit from 60 to 5,000/h)."""

    github_api_url: str = "https://api.github.com"
    github_token: str | None = None
    # Delay asked of the engine when a rate-limit answer says nothing about when it resets.
    github_default_retry_after: float = 60.0


class GitHubNotFoundError(NonRetryableError):
    """The user or repository does not exist (or is not visible to us)."""


class CachedResponse(msgspec.Struct, frozen=True, kw_only=True):
    """A 200 answer kept for conditional requests: its ETag, its Link header, its body."""

    etag: str
    link: str | None = None
    body: bytes = b""


class ResponseCache(Protocol):
    """Where a GitHub client keeps answers between runs (keys are request URLs)."""

    async def get(self, key: str) -> CachedResponse | None: ...

    async def put(self, key: str, value: CachedResponse) -> None: ...


class GitHubUser(msgspec.Struct, frozen=True, kw_only=True):
    login: str
    id: int | None = None
    # "User", "Organization" or "Bot"; older recordings may lack it.
    type: str = "User"
    name: str | None = None
    bio: str | None = None
    blog: str | None = None
    location: str | None = None
    email: str | None = None
    company: str | None = None
    html_url: str | None = None
    avatar_url: str | None = None
    public_repos: int = 0
    followers: int = 0


class GitHubRepo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    full_name: str
    description: str | None = None
    language: str | None = None
    topics: list[str] = msgspec.field(default_factory=list)
    stargazers_count: int | None = None
    # Older payloads carry only `watchers_count` (which then meant stars).
    watchers_count: int | None = None
    forks_count: int = 0
    fork: bool = False
    archived: bool = False
    html_url: str | None = None
    homepage: str | None = None
    pushed_at: datetime | None = None

    @property
    def stars(self) -> int:
        if self.stargazers_count is not None:
            return self.stargazers_count
        return self.watchers_count or 0


def parse_link_header(value: str) -> dict[str, str]:
    """`<url>; rel="next", <url>; rel="last"` → {"next": url, "last": url}."""
    links: dict[str, str] = {}
    for part in value.split(","):
        match = re.match(r"\s*<([^>]*)>\s*;(.*)", part)
        if not match:
            continue
        rel = re.search(r'rel\s*=\s*"?([^";]+)"?', match.group(2))
        if rel:
            for name in rel.group(1).split():
                links[name] = match.group(1)
    return links


# Requests GitHub counts against the rate limit (every answer but a 304), per task.
_CHARGED: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "github_charged", default=None
)


class GitHub:
    """A GitHub REST client over the shared httpx client."""

    @staticmethod
    @contextlib.contextmanager
    def counting() -> Iterator[list[int]]:
        """`with GitHub.counting() as charged:` — `charged[0]` is how many requests made in
        the block (in this task) count against GitHub's limit; 304 answers do not."""
        charged = [0]
        token = _CHARGED.set(charged)
        try:
            yield charged
        finally:
            _CHARGED.reset(token)

    def __init__(
        self,
        settings: GitHubSettings,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.time,
        cache: ResponseCache | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._clock = clock
        self._cache = cache
        self._base = settings.github_api_url.rstrip("/")
        base = urllib.parse.urlsplit(self._base)
        self._origin = (base.scheme, base.netloc.lower())

    async def get_user(self, login: str) -> GitHubUser:
        """GET /users/{login}."""
        _check_login(login)
        response = await self._get(f"{self._base}/users/{login}", what=f"GitHub user {login!r}")
        return cast(GitHubUser, _decode(response, GitHubUser, f"user {login!r}"))

    async def list_repos(self, login: str, *, limit: int = 30) -> list[GitHubRepo]:
        """The user's own repositories, no forks, most recently pushed first, at most `limit`."""
        _check_login(login)
        url: str | None = (
            f"{self._base}/users/{login}/repos?type=owner&sort=pushed&direction=desc&per_page=100"
        )
        repos: list[GitHubRepo] = []
        pages = 0
        while url and pages < MAX_PAGES and len(repos) < limit:
            response = await self._get(url, what=f"repositories of {login!r}")
            pages += 1
            page = _decode(response, list[GitHubRepo], f"repositories of {login!r}")
            repos.extend(repo for repo in page if not repo.fork)
            url = self._next_page(response)
        repos.sort(key=lambda r: r.pushed_at.timestamp() if r.pushed_at else 0.0, reverse=True)
        return repos[:limit]

    async def get_languages(self, full_name: str) -> dict[str, int]:
        """GET /repos/{owner}/{repo}/languages: bytes of code per language (may be empty)."""
        _check_repo(full_name)
        response = await self._get(
            f"{self._base}/repos/{full_name}/languages", what=f"languages of {full_name}"
        )
        return cast(dict[str, int], _decode(response, dict[str, int], f"languages of {full_name}"))

    async def get_readme(self, full_name: str, *, max_chars: int = MAX_README_CHARS) -> str | None:
        """The README's text, or None when the repository has none (a 404 here is normal)."""
        _check_repo(full_name)
        try:
            response = await self._get(
                f"{self._base}/repos/{full_name}/readme", what=f"README of {full_name}"
            )
        except GitHubNotFoundError:
            return None
        body = _decode(response, dict[str, Any], f"README of {full_name}")
        content = body.get("content")
        if not isinstance(content, str):
            return None
        if body.get("encoding", "base64") != "base64":
            return content[:max_chars]
        try:
            # The API wraps base64 at 60 columns with "\n"; strip whitespace and decode strictly.
            raw = base64.b64decode("".join(content.split()), validate=True)
        except ValueError as exc:
            raise UpstreamError(
                f"GitHub README of {full_name}: content is not valid base64"
            ) from exc
        return raw.decode("utf-8", "replace")[:max_chars]

    # ---- plumbing -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self._settings.github_token:
            headers["Authorization"] = f"Bearer {self._settings.github_token}"
        return headers

    def _cache_key(self, url: str) -> str:
        # Answers differ with and without a token (private fields, `Vary: Authorization`).
        return f"{'token' if self._settings.github_token else 'anonymous'} {url}"

    async def _get(self, url: str, *, what: str) -> httpx.Response:
        headers = self._headers()
        cached = await self._cache.get(self._cache_key(url)) if self._cache else None
        if cached is not None:
            headers["If-None-Match"] = cached.etag
        try:
            response = await self._client.get(url, headers=headers, follow_redirects=False)
        except httpx.TimeoutException as exc:
            raise UpstreamError(f"GitHub {what}: the request timed out") from exc
        except httpx.TransportError as exc:
            raise UpstreamError(f"GitHub {what}: could not connect ({type(exc).__name__})") from exc
        counter = _CHARGED.get()
        if counter is not None and response.status_code != 304:
            counter[0] += 1
        if response.status_code == 304 and cached is not None:
            replay = {"link": cached.link} if cached.link else {}
            return httpx.Response(
                200, headers=replay, content=cached.body, request=response.request
            )
        if response.status_code == 200:
            etag = response.headers.get("etag")
            if self._cache is not None and etag:
                await self._cache.put(
                    self._cache_key(url),
                    CachedResponse(
                        etag=etag, link=response.headers.get("link"), body=response.content
                    ),
                )
            return response
        self._raise(response, what)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        # The shared classifier holds GitHub's rows (primary limit: 403 with the quota
        # spent; secondary: 403/429 with retry-after) and reads the reset headers.
        verdict = classify(
            status,
            response.headers,
            PROVIDERS["github"],
            default_retry_after=self._settings.github_default_retry_after,
            now=self._clock,
        )
        # A secondary limit may come with neither header, only its message.
        if (
            verdict.outcome != "retry_after"
            and status in (403, 429)
            and "rate limit" in response.text[:2000].lower()
        ):
            verdict = Verdict("retry_after", self._settings.github_default_retry_after)
        if verdict.outcome == "retry_after":
            delay = verdict.delay or MIN_DELAY
            raise RetryAfterError(
                f"GitHub {what}: rate limited ({status}); retry in {delay:.0f}s",
                timedelta(seconds=delay),
            )
        if status == 404:
            raise GitHubNotFoundError(f"GitHub {what}: not found (404)")
        if status == 401:
            raise NonRetryableError(f"GitHub {what}: unauthorised (401); check GITHUB_TOKEN")
        raise_for_status(
            response,
            f"GitHub {what}",
            secrets=[self._settings.github_token],
            provider=PROVIDERS["github"],
        )

    def _next_page(self, response: httpx.Response) -> str | None:
        link = response.headers.get("link")
        if not link:
            return None
        url = parse_link_header(link).get("next")
        if not url:
            return None
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc.lower()) != self._origin:
            raise UpstreamError("GitHub: a pagination link points to another host; not followed")
        return url


def _check_login(login: str) -> None:
    if not isinstance(login, str) or not _LOGIN.match(login):
        raise NonRetryableError(f"not a valid GitHub username: {login[:50]!r}")


def _check_repo(full_name: str) -> None:
    if not isinstance(full_name, str) or not _REPO.match(full_name) or ".." in full_name:
        raise NonRetryableError(f"not a valid repository name: {full_name[:100]!r}")


def _decode(response: httpx.Response, type_: Any, what: str) -> Any:
    try:
        return msgspec.json.decode(response.content, type=type_)
    except msgspec.DecodeError as exc:
        snippet = " ".join(response.text.split())[:120]
        raise UpstreamError(f"GitHub {what}: unexpected answer: {snippet!r}") from exc
