"""The dashboard over a real gateway app and NATS: the session guard, CSRF, headers,
escaping, the base path, and the pages rendering real records."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from nats.aio.client import Client as NATS

from services.gateway.app import create_app
from services.gateway.config import GatewaySettings
from services.gateway.engine import connect_gateway
from shared.bus import ensure_bucket
from shared.errors import ConfigError
from shared.schedules import ScheduleState
from shared.schedules import bucket_name as schedules_bucket
from shared.workflow import Context, Instances, InstanceState, Registry, workflow
from shared.workflow.model import AttemptOutput, StepRecord, utcnow
from tests.support.engine import engine_settings, prepare, running_worker, wait_for

TOKEN = "ui-token-0123456789abcdef"
SCRIPT = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>"


async def shout(text: str) -> dict[str, str]:
    return {"said": text}


@workflow("ui-echo")
async def echo(ctx: Context[None], params: dict[str, Any]) -> dict[str, str]:
    return await ctx.step("shout", shout, params.get("text", ""))


@workflow("ui-waiter")
async def waiter(ctx: Context[None], params: dict[str, Any]) -> Any:
    await ctx.step("ask", shout, "asked")
    return await ctx.wait_for_event("approval", "approved", timedelta(minutes=10))


REGISTRY = Registry([echo, waiter])


def ui_app(nats_url: str, prefix: str, **overrides: Any) -> Litestar:
    @contextlib.asynccontextmanager
    async def factory() -> AsyncIterator[Instances]:
        nc = await connect_gateway(nats_url)
        try:
            yield await prepare(nc, REGISTRY, engine_settings(prefix))
        finally:
            await nc.drain()

    return create_app(GatewaySettings(workflows_auth_token=TOKEN, **overrides), factory)


@pytest.fixture
async def client(nats_url: str, prefix: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(ui_app(nats_url, prefix)) as test_client:
        test_client.follow_redirects = False
        yield test_client


async def login(client: AsyncTestClient[Litestar], base: str = "/ui") -> str:
    """Log in; the CSRF token of the session (read from a page)."""
    response = await client.post(f"{base}/login", data={"token": TOKEN, "next": f"{base}/runs"})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"{base}/runs"
    page = await client.get(f"{base}/runs")
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf" value="([0-9a-f]{40})"', page.text)
    assert found, page.text[:2000]
    return found.group(1)


async def test_pages_need_a_session_and_the_login_exchanges_the_token(
    client: AsyncTestClient[Litestar],
) -> None:
    response = await client.get("/ui/runs?status=errored")
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login?next=%2Fui%2Fruns%3Fstatus%3Derrored"
    assert (
        await client.get("/ui/live/runs", headers={"accept": "text/event-stream"})
    ).status_code == 401
    # the API's bearer guard does not accept the dashboard's cookie, nor the reverse
    assert (await client.get("/ui/")).status_code == 303
    login_page = await client.get("/ui/login")
    assert login_page.status_code == 200 and 'type="password"' in login_page.text

    wrong = await client.post("/ui/login", data={"token": TOKEN + "x"})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    assert "set-cookie" not in wrong.headers

    ok = await client.post("/ui/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert ok.status_code == 303 and ok.headers["location"] == "/ui/"  # no open redirect
    cookie = ok.headers["set-cookie"]
    assert cookie.startswith("hh_ui=v1.")
    flags = [part.strip().lower() for part in cookie.split(";")[1:]]
    assert "httponly" in flags and "samesite=strict" in flags and "path=/ui" in flags
    assert "secure" not in flags  # plain http here; over https it is set (below)
    assert TOKEN not in cookie
    assert (await client.get("/ui/")).status_code == 200
    assert (await client.get("/instances")).status_code == 401  # cookie is not a bearer token

    behind_tls = await client.post(
        "/ui/login", data={"token": TOKEN}, headers={"x-forwarded-proto": "https"}
    )
    assert "secure" in behind_tls.headers["set-cookie"].lower().replace(" ", "").split(";")

    # a forged or tampered cookie is no session
    client.cookies.set("hh_ui", cookie.split(";")[0].split("=", 1)[1][:-1] + "0", path="/ui")
    assert (await client.get("/ui/runs")).status_code == 303


async def test_every_response_carries_the_csp_and_state_changes_need_the_csrf_token(
    client: AsyncTestClient[Litestar], nc: NATS, prefix: str
) -> None:
    for path in ("/ui/login", "/ui/runs", "/ui/static/ui.js", "/ui/nowhere"):
        headers = (await client.get(path)).headers
        csp = headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert headers["x-frame-options"] == "DENY"
    assert "content-security-policy" not in (await client.get("/health")).headers

    csrf = await login(client)
    engine = await prepare(nc, REGISTRY, engine_settings(prefix))
    await engine.trigger("ui-waiter", {}, "w1")
    url = "/ui/runs/ui-waiter/w1/action"
    missing = await client.post(url, data={"action": "terminate"})
    assert missing.status_code == 403 and "CSRF" in missing.text
    forged = await client.post(url, data={"action": "terminate", "csrf": "0" * 40})
    assert forged.status_code == 403
    assert (await engine.get("ui-waiter", "w1")).status == "queued"
    done = await client.post(url, data={"action": "terminate", "csrf": csrf})
    assert done.status_code == 303 and done.headers["location"] == "/ui/runs/ui-waiter/w1"
    assert (await engine.get("ui-waiter", "w1")).status == "terminated"
    # the same token in the htmx header works too; an action the status refuses is named
    again = await client.post(url, data={"action": "pause"}, headers={"x-csrf-token": csrf})
    assert again.status_code == 409 and "terminated" in again.text.lower()


async def test_run_values_are_escaped_and_the_detail_shows_steps_and_inbox(
    client: AsyncTestClient[Litestar], nc: NATS, nats_url: str, prefix: str
) -> None:
    csrf = await login(client)
    engine = await prepare(nc, REGISTRY, engine_settings(prefix))
    async with running_worker(nats_url, REGISTRY, engine_settings(prefix)):
        await engine.trigger("ui-echo", {"text": SCRIPT, "userId": "u<b>1"}, "x1")
        await wait_for(engine, "ui-echo", "x1")
        await engine.trigger("ui-waiter", {}, "w2")
        await wait_for(engine, "ui-waiter", "w2", until=lambda s: s.status == "waiting")
        sent = await client.post(
            "/ui/runs/ui-waiter/w2/event",
            data={"type": "approved", "payload": '{"by": "<i>ops</i>"}', "csrf": csrf},
        )
        assert sent.status_code == 303
        done = await wait_for(engine, "ui-waiter", "w2")
    assert done.output == {"by": "<i>ops</i>"}

    page = (await client.get("/ui/runs/ui-echo/x1")).text
    assert "<script>window.__pwned" not in page and "<img src=x" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "u&lt;b&gt;1" in page and "<b>1" not in page
    assert 'id="step-0"' in page and "shout" in page and 'data-fold="out-0-g0"' in page
    assert re.search(r'<rect class="run" x="[\d.]+" y="1" width="[\d.]+"', page)
    value = await client.get("/ui/runs/ui-echo/x1/steps/0")  # a folded output, fetched
    assert value.status_code == 200 and value.text.startswith('<pre class="json">')
    assert "&lt;script&gt;window.__pwned" in value.text and "<script>" not in value.text
    assert (await client.get("/ui/runs/ui-echo/x1/steps/7")).status_code == 404

    waited = (await client.get("/ui/runs/ui-waiter/w2")).text
    assert "approved" in waited and "&lt;i&gt;ops&lt;/i&gt;" in waited
    assert 'id="step-1"' in waited and "wait" in waited

    listing = (await client.get("/ui/runs?user=u%3Cb%3E1")).text
    assert 'id="run-ui-echo--x1"' in listing and 'id="run-ui-waiter--w2"' not in listing
    by_id = (await client.get("/ui/runs?instance=w2")).text
    assert 'id="run-ui-waiter--w2"' in by_id and 'id="run-ui-echo--x1"' not in by_id
    assert (await client.get("/ui/runs?status=nope")).status_code == 400

    overview = (await client.get("/ui/")).text
    assert "ui-echo" in overview and "ui-waiter" in overview
    row = re.search(r'href="/ui/runs\?workflow=ui-echo".*?</tr>', overview, re.S)
    assert row and ">1</a>" in row.group(0)  # one complete

    dry = await client.post(
        "/ui/bulk",
        data={"action": "restart", "workflow": "ui-echo", "dry_run": "1", "csrf": csrf},
        headers={"hx-request": "true"},
    )
    assert dry.status_code == 200 and '<strong class="count">1</strong>' in dry.text
    assert (await engine.get("ui-echo", "x1")).generation == 0  # a dry run acts on nothing

    started = await client.post(
        "/ui/bulk", data={"action": "terminate", "workflow": "ui-waiter", "csrf": csrf}
    )
    assert started.status_code == 303 and started.headers["location"].startswith("/ui/bulk/")
    job_page = await client.get(started.headers["location"])
    while "done" not in job_page.text:
        await asyncio.sleep(0.2)
        job_page = await client.get(started.headers["location"])
    assert "Bulk terminate" in job_page.text
    assert (await engine.get("ui-waiter", "w2")).status == "complete"  # finished: skipped

    assert (await client.get("/ui/runs/ui-echo/nope")).status_code == 404
    assert (await client.get("/ui/runs/nowhere/x1")).status_code == 404
    redrive = await client.post("/ui/dlq/99/redrive", data={"csrf": csrf})
    assert redrive.status_code == 404 and "dead letter" in redrive.text.lower()


async def test_schedules_show_the_last_and_next_fire(
    client: AsyncTestClient[Litestar], nc: NATS, prefix: str
) -> None:
    await login(client)
    assert "has not recorded any job" in (await client.get("/ui/schedules")).text
    kv = await ensure_bucket(nc.jetstream(), schedules_bucket(prefix))
    state = ScheduleState(
        job="weekly-summary",
        expression="0 9 * * MON",
        timezone="Europe/Berlin",
        event="cron/weekly-summary",
        last_slot="2026-11-30T08:00:00Z",
        next_fire="2026-12-07T08:00:00Z",
        skipped=2,
    )
    await kv.put("weekly-summary", msgspec.json.encode(state))
    page = (await client.get("/ui/schedules")).text
    for text in (
        "weekly-summary",
        "0 9 * * MON",
        "Europe/Berlin",
        "2026-11-30T08:00:00Z",
        "2026-12-07T08:00:00Z",
        ">2</td>",
    ):
        assert text in page


async def test_a_run_of_1000_steps_renders_every_step(
    client: AsyncTestClient[Litestar], nc: NATS, prefix: str
) -> None:
    await login(client)
    engine = await prepare(nc, REGISTRY, engine_settings(prefix))
    now = utcnow()
    state = InstanceState(
        workflow="ui-echo",
        instance_id="big",
        status="complete",
        params={},
        created_at=now - timedelta(seconds=100),
        started_at=now - timedelta(seconds=99),
        ended_at=now,
        output={"n": 1000},
        steps=[
            StepRecord(
                seq=n,
                name=f"step-{n}",
                status="complete",
                attempts=1 + n % 3,
                started_at=now - timedelta(seconds=99 - n * 0.099),
                ended_at=now - timedelta(seconds=99 - n * 0.099 - 0.05),
                result={"n": n, "text": "x" * (n % 50)},
            )
            for n in range(1000)
        ],
    )
    assert await (await engine.store()).create(state) is not None
    started = time.perf_counter()
    response = await client.get("/ui/runs/ui-echo/big")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert response.text.count('<div id="step-') == 1000
    assert 'id="step-999"' in response.text
    print(f"1000-step run page: {elapsed * 1000:.0f} ms, {len(response.content)} bytes")


async def test_a_gated_step_kept_for_review_shows_the_badge_and_its_rejected_attempts(
    client: AsyncTestClient[Litestar], nc: NATS, prefix: str
) -> None:
    await login(client)
    engine = await prepare(nc, REGISTRY, engine_settings(prefix))
    now = utcnow()
    rejected = [
        AttemptOutput(round=0, value={"text": SCRIPT}, problems=["no Experience section"]),
        AttemptOutput(
            round=1, value={"text": "v2"}, problems=["invented employer: Initech"], fallback=True
        ),
    ]
    state = InstanceState(
        workflow="ui-echo",
        instance_id="gated",
        status="complete",
        params={},
        created_at=now - timedelta(seconds=3),
        started_at=now - timedelta(seconds=2),
        ended_at=now,
        output={"ok": True},
        steps=[
            StepRecord(
                seq=0,
                name="write",
                status="complete",
                attempts=1,
                started_at=now,
                ended_at=now,
                result={"text": "v2"},
                outputs=rejected,
                needs_review=True,
            ),
        ],
    )
    assert await (await engine.store()).create(state) is not None
    response = await client.get("/ui/runs/ui-echo/gated")
    assert response.status_code == 200
    page = response.text
    assert 'id="run-review"' in page and page.count("needs review") >= 2
    assert "attempt 1 rejected: no Experience section" in page
    assert "attempt 2 (fallback model) rejected: invented employer: Initech" in page
    assert SCRIPT not in page and "&lt;script&gt;window.__pwned" in page
    plain = await client.get("/ui/runs/ui-echo/big-absent")
    assert plain.status_code == 404


@pytest.mark.parametrize("forwarded", ["/jobs/ui", "/ui"])
async def test_the_dashboard_serves_under_a_base_path_whether_the_proxy_strips_it_or_not(
    nats_url: str, prefix: str, forwarded: str
) -> None:
    async with AsyncTestClient(ui_app(nats_url, prefix, ui_base_path="/jobs")) as client:
        client.follow_redirects = False
        response = await client.get(f"{forwarded}/runs")
        assert response.status_code == 303
        assert response.headers["location"] == "/jobs/ui/login?next=%2Fjobs%2Fui%2Fruns"
        ok = await client.post(f"{forwarded}/login", data={"token": TOKEN})
        assert ok.headers["location"] == "/jobs/ui/"
        assert "Path=/jobs/ui" in ok.headers["set-cookie"]
        value = ok.headers["set-cookie"].split(";")[0].split("=", 1)[1]
        client.cookies.set("hh_ui", value)
        page = await client.get(f"{forwarded}/runs")
        assert page.status_code == 200
        assert 'src="/jobs/ui/static/htmx-2.0.11.min.js"' in page.text
        assert 'sse-connect="/jobs/ui/live/runs?' in page.text
        assert (await client.get(f"{forwarded}/static/ui.js")).status_code == 200
        assert (await client.get("/jobs/instances")).status_code in (401, 404)


def test_a_bad_base_path_stops_the_gateway_naming_the_variable() -> None:
    for bad in ("jobs", "/jobs/", "/jo bs", "/a//b"):
        with pytest.raises(ConfigError, match="UI_BASE_PATH"):
            GatewaySettings(workflows_auth_token=TOKEN, ui_base_path=bad)
