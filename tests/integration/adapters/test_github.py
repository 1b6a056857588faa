"""The GitHub client against the fake replaying recorded GitHub responses."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from shared.errors import NonRetryableError, RetryAfterError, UpstreamError
from shared.sources import GitHub, GitHubNotFoundError, GitHubSettings
from tests.integration.adapters.conftest import GITHUB_TOKEN
from tests.support.fakes import RunningFake

NOW = 1_800_000_000.0


def github(fake: RunningFake, client: httpx.AsyncClient, token: str | None = None) -> GitHub:
    settings = GitHubSettings(github_api_url=fake.url, github_token=token)
    return GitHub(settings, client, clock=lambda: NOW)


async def test_user_profile(github_fake: RunningFake, http_client: httpx.AsyncClient) -> None:
    """GET /users/{login} decodes the recorded modern user object, sending the token."""
    user = await github(github_fake, http_client, GITHUB_TOKEN).get_user("jacquev6")
    assert user.name == "Vincent Jacques" and user.blog == "http://vincent-jacques.net"
    assert user.location == "France" and user.public_repos == 38
    headers = github_fake.control.last_request()["headers"]
    assert headers["authorization"] == f"Bearer {GITHUB_TOKEN}"
    assert headers["user-agent"].startswith("HowlerHire")


async def test_unknown_user_is_a_clear_non_retryable_error(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A 404 is GitHubNotFoundError naming the user."""
    with pytest.raises(GitHubNotFoundError, match=r"ThisUserShouldReallyNotExist.*not found"):
        await github(github_fake, http_client).get_user("ThisUserShouldReallyNotExist")


async def test_invalid_login_is_refused_without_a_request(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A login that is not a GitHub username (path tricks) never reaches the API."""
    for login in ("../orgs/x", "a/b", "-bad", "x" * 40, "user?x=1"):
        with pytest.raises(NonRetryableError):
            await github(github_fake, http_client).get_user(login)
    assert github_fake.control.requests() == []


async def test_repos_follow_link_pagination(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """Repos follow rel="next" across the three recorded pages, drop forks, sort by push."""
    repos = await github(github_fake, http_client).list_repos("dstufft", limit=500)
    paths = [r["path"] + "?" + r["query"] for r in github_fake.control.requests()]
    assert paths[0].startswith("/users/dstufft/repos?type=owner&sort=pushed")
    assert paths[1:] == [
        "/user/145979/repos?per_page=100&page=2",
        "/user/145979/repos?per_page=100&page=3",
    ]
    assert repos and not any(r.fork for r in repos)
    pushed = [r.pushed_at for r in repos if r.pushed_at]
    assert pushed == sorted(pushed, reverse=True)


async def test_repos_stop_at_the_limit(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """With 30 own repos on the first page, no further page is fetched."""
    repos = await github(github_fake, http_client).list_repos("dstufft")
    assert len(repos) == 30
    assert len(github_fake.control.requests()) == 1


async def test_pagination_to_another_host_is_not_followed(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A Link header pointing elsewhere is refused (it would carry the token away)."""
    github_fake.control.script(
        replay="github/jacquev6/jacquev6_repos",
        headers={"link": '<https://evil.example/users/x/repos?page=2>; rel="next"'},
    )
    with pytest.raises(UpstreamError, match="another host"):
        await github(github_fake, http_client, GITHUB_TOKEN).list_repos("jacquev6", limit=100)


async def test_languages_and_empty_languages(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """Languages decode to a dict; the recorded `{}` is an empty dict."""
    client = github(github_fake, http_client)
    assert await client.get_languages("PyGithub/PyGithub") == {"Shell": 673, "Python": 127266}
    assert await client.get_languages("sigmavirus24/github3.py") == {}


async def test_readme_base64_with_newlines(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """The README's base64 (wrapped with newlines) decodes to its Markdown text."""
    text = await github(github_fake, http_client).get_readme("PyGithub/PyGithub")
    assert text is not None and text.startswith("# PyGitHub")
    assert await github(github_fake, http_client).get_readme("nobody/nothing") is None


@pytest.mark.parametrize("status", [403, 429])
async def test_rate_limit_waits_until_reset(
    github_fake: RunningFake, http_client: httpx.AsyncClient, status: int
) -> None:
    """403/429 with x-ratelimit-remaining: 0 → RetryAfterError until x-ratelimit-reset."""
    github_fake.control.script(
        status=status,
        replay="github/errors/error_rate_limit_403",
        headers={"x-ratelimit-reset": str(int(NOW) + 42)},
    )
    with pytest.raises(RetryAfterError) as caught:
        await github(github_fake, http_client).get_user("jacquev6")
    assert caught.value.delay == timedelta(seconds=42)


async def test_rate_limit_honours_retry_after(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A secondary limit's retry-after wins; the recorded 403 without reset gets the default."""
    github_fake.control.script(
        status=403, json={"message": "secondary rate limit"}, headers={"retry-after": "90"}
    )
    with pytest.raises(RetryAfterError) as caught:
        await github(github_fake, http_client).get_user("jacquev6")
    assert caught.value.delay == timedelta(seconds=90)
    github_fake.control.script(replay="github/errors/error_rate_limit_403")
    with pytest.raises(RetryAfterError) as caught:
        await github(github_fake, http_client).get_user("jacquev6")
    assert caught.value.delay == timedelta(seconds=60)


async def test_plain_403_is_not_a_rate_limit(
    github_fake: RunningFake, http_client: httpx.AsyncClient
) -> None:
    """A 403 with remaining quota is a NonRetryableError, not a wait."""
    github_fake.control.script(
        status=403, json={"message": "Forbidden"}, headers={"x-ratelimit-remaining": "50"}
    )
    with pytest.raises(NonRetryableError):
        await github(github_fake, http_client).get_user("jacquev6")
