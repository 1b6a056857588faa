"""profile-sync end to end: gateway and parsing service as processes, real NATS and
PostgreSQL, GitHub as a local server replaying recorded answers (ETags, Link, limits)."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from pathlib import Path
from typing import Any

from shared.bus import connect
from tests.e2e.parsing_stack import ANTHROPIC_KEY, GITHUB_TOKEN, Stack

WF = "profile-sync"


def _repo(fixtures_dir: Path, **changes: Any) -> dict[str, Any]:
    """A recorded repository object with some fields changed."""
    recorded = json.loads((fixtures_dir / "github/jacquev6/jacquev6_repos.json").read_text())[0]
    return {**recorded, **changes}


async def test_each_fixture_user_is_synced(parsing: Stack) -> None:
    """jacquev6, sigmavirus24, octocat and dstufft: languages → skills, empty fields filled,
    the blog added to portfolio_urls once; a user-written field kept."""
    parsing.start_parsing()
    expected = {
        "jacquev6": ("Vincent Jacques", "France", "http://vincent-jacques.net"),
        "sigmavirus24": ("Ian Stapleton Cordasco", "Madison, WI", None),
        "octocat": ("The Octocat", "San Francisco", "https://github.blog"),
        "dstufft": (None, None, None),
    }
    users = {}
    for handle in expected:
        user = await parsing.new_user(location="Written by the user", skills=["python"])
        instance = await parsing.trigger(WF, {"userId": str(user), "githubHandle": handle})
        users[handle] = (user, instance)
    for handle, (name, _location, blog) in expected.items():
        user, instance = users[handle]
        body = await parsing.finished(WF, instance)
        assert body["status"] == "complete", (handle, body)
        profile = await parsing.profile(user)
        assert profile["full_name"] == name, handle
        assert profile["location"] == "Written by the user"
        assert [s.lower() for s in profile["skills"]].count("python") == 1
        assert profile["skills"][0] == "python"  # the user's spelling stays first
        if blog:
            assert profile["portfolio_urls"] == [blog]
        assert body["output"]["skillsExtracted"] == len(body["output"]["skills"])
    jacquev6 = (await parsing.finished(WF, users["jacquev6"][1]))["output"]
    # Python in 6 repos, then C++, HTML, JavaScript, Vue (→ Vue.js + JavaScript).
    assert jacquev6["skills"][:2] == ["Python", "C++"]
    assert {"Vue.js", "JavaScript", "HTML"} <= set(jacquev6["skills"])
    assert [p["name"] for p in jacquev6["projects"]] == [
        "IpMap",
        "DrawTurksHead",
        "ActionTree",
        "InteractiveCommandLine",
        "LowVoltage",
    ]  # by stars; ties keep the most recently pushed first
    assert jacquev6["projectsFound"] == 5
    dstufft = (await parsing.finished(WF, users["dstufft"][1]))["output"]
    assert dstufft["projectsFound"] == 5 and "Python" in dstufft["skills"]
    requests = parsing.github.requests()
    assert all(r["headers"]["authorization"] == f"Bearer {GITHUB_TOKEN}" for r in requests)


async def test_pagination_follows_link_to_the_own_repositories(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """Forks on page 1, own repositories on page 2: the Link header is followed."""
    parsing.start_parsing()
    page2 = f"{parsing.github.base_url}/user/583231/repos?per_page=100&page=2"
    parsing.github.script(
        path="^/users/octocat/repos$",
        json=[
            _repo(fixtures_dir, name=f"fork{i}", full_name=f"octocat/fork{i}", fork=True)
            for i in range(3)
        ]
        + [
            _repo(
                fixtures_dir,
                name="Spoon-Knife",
                full_name="octocat/Spoon-Knife",
                language="HTML",
                stargazers_count=12,
            )
        ],
        headers={"link": f'<{page2}>; rel="next", <{page2}>; rel="last"'},
    )
    parsing.github.script(
        path="^/user/583231/repos$",
        json=[
            _repo(
                fixtures_dir,
                name="hello-world",
                full_name="octocat/hello-world",
                language="Go",
                stargazers_count=None,
                watchers_count=40,
                topics=["kubernetes"],
            )
        ],
    )
    user = await parsing.new_user()
    body = await parsing.finished(
        WF, await parsing.trigger(WF, {"userId": str(user), "githubHandle": "octocat"})
    )
    assert body["status"] == "complete", body
    output = body["output"]
    # watchers_count stands in for stars in the older payload.
    assert [(p["name"], p["stars"]) for p in output["projects"]] == [
        ("hello-world", 40),
        ("Spoon-Knife", 12),
    ]
    assert {"Go", "Golang", "HTML", "Kubernetes"} <= set(output["skills"])
    paths = [r["path"] for r in parsing.github.requests()]
    assert "/user/583231/repos" in paths


async def test_resync_is_answered_304_costing_no_rate_limit_and_no_llm_call(
    parsing: Stack, fixtures_dir: Path
) -> None:
    """The second sync of an unchanged profile sends If-None-Match everywhere, is answered
    304 (not counted by GitHub), and makes no Claude call; no token leaks anywhere."""
    parsing.start_parsing(claude=True)
    repo = _repo(
        fixtures_dir, name="github3.py", full_name="sigmavirus24/github3.py", stargazers_count=900
    )
    parsing.github.script(times=2, path="^/users/sigmavirus24/repos$", json=[repo])
    parsing.anthropic.script(times=1, tool_input={"skills": ["Python", "Requests"]})
    user = await parsing.new_user()
    params = {"userId": str(user), "githubHandle": "sigmavirus24"}
    first = await parsing.finished(WF, await parsing.trigger(WF, params))
    assert first["status"] == "complete", first
    assert {"Python", "Requests"} <= set(first["output"]["skills"])
    assert len(parsing.anthropic.requests("/v1/messages")) == 1
    prompt = json.loads(parsing.anthropic.requests("/v1/messages")[0]["body"])
    assert "github3.py" in prompt["messages"][0]["content"][0]["text"]
    remaining = parsing.github.stats()["rate_remaining"]
    seen = len(parsing.github.requests())
    assert seen == 3  # user, repos, README

    second = await parsing.finished(WF, await parsing.trigger(WF, params))
    assert second["status"] == "complete", second
    assert second["output"]["skills"] == first["output"]["skills"]
    again = parsing.github.requests()[seen:]
    assert len(again) == 3 and all(r["headers"].get("if-none-match") for r in again)
    assert parsing.github.stats()["rate_remaining"] == remaining
    assert len(parsing.anthropic.requests("/v1/messages")) == 1  # no second LLM call
    assert first["output"]["githubRequestsCharged"] == 3
    assert second["output"]["githubRequestsCharged"] == 0
    assert second["output"]["readmeSkillsCached"] is True
    profile = await parsing.profile(user)
    assert sorted(profile["skills"]) == sorted(set(profile["skills"]))
    # The tokens are in no log line, output or memo value (keys are digests).
    texts = [json.dumps(first), json.dumps(second), *(p.output() for p in parsing.procs)]
    nc = await connect(parsing.env["NATS_URL"], "leak-check", attempts=3)
    try:
        kv = await nc.jetstream().key_value(f"{parsing.env['HOWLERHIRE_NAMESPACE']}_parsing_memo")
        keys = await kv.keys()
        assert len(keys) >= 4  # user, repos, README answers and the README skills
        for key in keys:
            entry = await kv.get(key)
            texts.append(key + zlib.decompress(entry.value or b"").decode("utf-8", "replace"))
    finally:
        await nc.drain()
    for text in texts:
        assert GITHUB_TOKEN not in text and ANTHROPIC_KEY not in text


async def test_bots_organisations_and_unknown_users_fail_clearly(parsing: Stack) -> None:
    """Organization and Bot accounts are not a person's profile; a 404 names the user."""
    parsing.start_parsing()
    parsing.github.script(
        path="^/users/acme-corp$", json={"login": "acme-corp", "type": "Organization"}
    )
    parsing.github.script(path="^/users/helper-bot$", json={"login": "helper-bot", "type": "Bot"})
    cases = {
        "acme-corp": "is an Organization, not a person's profile",
        "helper-bot": "is a Bot, not a person's profile",
        "ThisUserShouldReallyNotExist": "not found (404)",
    }
    for handle, expected in cases.items():
        user = await parsing.new_user()
        body = await parsing.finished(
            WF, await parsing.trigger(WF, {"userId": str(user), "githubHandle": handle})
        )
        assert body["status"] == "errored", body
        assert expected in body["error"]["message"], body
        profile = await parsing.profile(user)
        assert profile["skills"] == [] and profile["full_name"] is None
    assert len(parsing.github.requests()) == 3  # one each: nothing retried


async def test_missing_or_malformed_handle_is_a_400_at_the_gateway(parsing: Stack) -> None:
    """No run starts for a handle GitHub could not have; the error names the field."""
    user = await parsing.new_user()
    for params in (
        {"userId": str(user)},
        {"userId": str(user), "githubHandle": "-bad-"},
        {"userId": str(user), "githubHandle": "../orgs/x"},
        {"userId": str(user), "githubHandle": "x" * 40},
    ):
        response = await parsing.post("/trigger", {"workflow": WF, "params": params})
        assert response.status_code == 400, response.text
        assert "githubHandle" in response.text
    assert parsing.github.requests() == []


async def test_a_rate_limit_answer_holds_back_every_replica_until_the_reset(
    parsing: Stack,
) -> None:
    """A 403 with x-ratelimit-remaining 0 parks the run durably until x-ratelimit-reset, and
    drains the shared `github` limit: a run on another replica started meanwhile sends
    nothing to GitHub before the reset either; both complete."""
    first = parsing.start_parsing(1)
    parsing.start_parsing(2)
    for _ in range(600):
        if all("worker started" in p.output() for p in parsing.procs[1:]):
            break
        await asyncio.sleep(0.1)
    reset = int(time.time()) + 15
    parsing.github.script(
        path="^/users/octocat$",
        replay="github/errors/error_rate_limit_403",
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )
    user_a, user_b = await parsing.new_user(), await parsing.new_user()
    a = await parsing.trigger(WF, {"userId": str(user_a), "githubHandle": "octocat"})
    for _ in range(300):
        if parsing.github.requests("^/users/octocat$"):
            break
        await asyncio.sleep(0.1)
    assert parsing.github.requests("^/users/octocat$"), first.output()
    b = await parsing.trigger(WF, {"userId": str(user_b), "githubHandle": "jacquev6"})
    statuses = set()
    for _ in range(200):
        statuses.add((await parsing.status(WF, a))["status"])
        if "waiting" in statuses:
            break
        await asyncio.sleep(0.1)
    assert "waiting" in statuses  # parked durably, not holding a worker
    for instance in (a, b):
        body = await parsing.finished(WF, instance, timeout=180)
        assert body["status"] == "complete", body
    tries = parsing.github.requests("^/users/octocat$")
    assert len(tries) == 2 and tries[1]["time"] >= reset - 1  # waited until the reset
    jacquev6 = parsing.github.requests("^/users/jacquev6$")
    assert jacquev6 and jacquev6[0]["time"] >= reset - 1  # so did the other replica's run
    assert (await parsing.profile(user_a))["full_name"] == "The Octocat"
