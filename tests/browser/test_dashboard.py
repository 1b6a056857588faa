"""The dashboard in a real headless Chromium against the real stack: log in, a run
appearing and its steps completing live (SSE, no reload), a step's output opened, a
`<script>` output inert, restart from a step running a new generation, a dead letter
re-driven, all under a base path; a screenshot of each page."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import TOKEN, UiStack, close_stack, open_stack

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__pwned = 1; alert('pwned')</script><img src=x onerror=window.__pwned=2>"
WAIT = 60_000  # ms: generous bounds for a loaded 2-core machine; never a timing assertion


class Watch:
    """What a page did that it must not: dialogs, CSP violations, page errors."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self._dismissing: list[asyncio.Future[None]] = []
        self.errors: list[str] = []
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("console", self._console)
        page.on("response", self._response)
        self.requests: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, msg: Any) -> None:
        # A failed load is judged by its response (below), which names the URL.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.errors.append(msg.text)

    def _response(self, response: Any) -> None:
        expected = response.status == 401 and response.url.endswith("/login")  # wrong token
        if response.status >= 400 and not expected and "favicon" not in response.url:
            self.errors.append(f"{response.status} {response.url}")

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        self._dismissing.append(asyncio.ensure_future(dialog.dismiss()))


async def log_in(page: Any, stack: UiStack, target: str, shots: Path) -> None:
    """Open a page, get sent to the login page, log in, land on that page."""
    await page.goto(stack.ui + target)
    await page.wait_for_url(f"**{stack.base}/login?next=*")
    await page.fill("input[name=token]", "not-the-token")
    await page.click("button[type=submit]")
    await page.wait_for_selector("text=That token is not valid.")
    await page.fill("input[name=token]", TOKEN)
    await page.screenshot(path=shots / "01-login.png", full_page=True)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{stack.base}{target}")
    cookies = await page.context.cookies()
    session = [c for c in cookies if c["name"] == "hh_ui"]
    assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    assert session[0]["path"] == stack.base


async def live(page: Any) -> None:
    await page.wait_for_selector("#live.on", timeout=WAIT)


@pytest.fixture
async def stack(nats_url: str, prefix: str, tmp_path: Path) -> AsyncIterator[UiStack]:
    opened = await open_stack(nats_url, prefix, tmp_path)
    try:
        yield opened
    finally:
        close_stack(opened)


async def big_run(nats_url: str, prefix: str) -> None:
    """A finished record of 1,000 steps, written straight into the instance bucket."""
    from shared.bus import Names, connect
    from shared.workflow.model import InstanceState, StepRecord, utcnow
    from shared.workflow.store import open_store

    nc = await connect(nats_url, "browser-test", attempts=3)
    try:
        store = await open_store(nc, Names(prefix))
        now = utcnow()
        steps = [
            StepRecord(
                seq=n,
                name=f"part-{n}",
                status="complete",
                attempts=1 + (n % 7 == 0),
                started_at=now - timedelta(seconds=100 - n * 0.1),
                ended_at=now - timedelta(seconds=100 - n * 0.1 - 0.06),
                result={"n": n, "text": "x" * (n % 60)},
            )
            for n in range(1000)
        ]
        state = InstanceState(
            workflow="ui-steps",
            instance_id="big",
            status="complete",
            params={"steps": 1000},
            created_at=now - timedelta(seconds=101),
            started_at=now - timedelta(seconds=100),
            ended_at=now,
            output={"steps": 1000},
            steps=steps,
        )
        assert await store.create(state) is not None
    finally:
        await nc.drain()


async def test_live_run_step_output_inert_script_and_restart_from_a_step(
    browser: Any, stack: UiStack, artifacts: Path, nats_url: str, prefix: str
) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT)
    context.set_default_navigation_timeout(WAIT)
    page = await context.new_page()
    watch = Watch(page)
    try:
        await log_in(page, stack, "/runs", artifacts)
        await live(page)
        await page.evaluate("window.__mark = 'no reload'")

        # A run started through the API appears in the open list, pushed by SSE.
        await stack.api(
            "POST",
            "/workflows/ui-steps/instances",
            {
                "instanceId": "r1",
                "params": {"steps": 4, "delay": 0.3, "gate": True, "html": SCRIPT},
            },
        )
        row = page.locator("#run-ui-steps--r1")
        await row.wait_for(timeout=WAIT)
        await stack.until("ui-steps", "r1", {"waiting"})
        await page.locator("#run-ui-steps--r1 .badge", has_text="waiting").wait_for(timeout=WAIT)
        assert await page.evaluate("window.__mark") == "no reload"
        await page.screenshot(path=artifacts / "02-runs.png", full_page=True)

        # The detail, opened while the run waits: two steps done, then the rest live.
        await row.locator("a").click()
        await page.wait_for_url("**/runs/ui-steps/r1")
        await live(page)
        assert await page.locator("#run-status").inner_text() == "waiting"
        assert await page.locator("#steps .srow[id]").count() == 3  # part-1, part-2, gate
        # Step 2's output, folded (fetched when opened): its <script> shows as text and
        # does nothing.
        summary = page.locator("#step-1 details[data-fold='out-1-g0'] summary")
        pre = page.locator("#step-1 details[data-fold='out-1-g0'] pre")
        assert not await pre.is_visible()
        await summary.click()
        await pre.wait_for(state="visible")
        text = await pre.inner_text()
        assert "<script>window.__pwned = 1; alert('pwned')</script><img src=x" in text
        assert await page.locator("#step-1 script, #run-head script, #step-1 img").count() == 0
        assert await page.evaluate("window.__pwned") is None
        assert watch.dialogs == []
        await page.screenshot(path=artifacts / "03-step-output.png", full_page=True)

        await page.evaluate("window.__mark = 'no reload'")
        await stack.api("POST", "/workflows/ui-steps/instances/r1/events/go", {"ok": True})
        await page.locator("#run-status", has_text="complete").wait_for(timeout=WAIT)
        await page.locator("#step-4 .badge", has_text="complete").wait_for(timeout=WAIT)
        assert await page.evaluate("window.__mark") == "no reload"
        assert await page.locator("#steps .srow[id]").count() == 5
        assert await page.locator("#run-inbox").inner_text() != ""
        # The opened output stayed open, its content kept, through the live updates.
        assert await pre.is_visible() and await pre.inner_text() == text
        assert sum(url.endswith("/runs/ui-steps/r1/steps/1") for url in watch.requests) == 1
        await page.screenshot(path=artifacts / "04-run-complete.png", full_page=True)

        # Restart from part-3: a new generation runs part-3 and part-4 again.
        before = await stack.instance("ui-steps", "r1")
        await page.select_option("#restart-from", "part-3")
        async with page.expect_navigation(url="**/runs/ui-steps/r1"):
            await page.click("#restart-form button[type=submit]")
        await page.locator("#run-generation", has_text="generation 1").wait_for(timeout=WAIT)
        await live(page)
        await page.locator("#run-status", has_text="complete").wait_for(timeout=WAIT)
        await page.locator("#step-4 .badge", has_text="complete").wait_for(timeout=WAIT)
        after = await stack.until("ui-steps", "r1", {"complete"})
        assert after["generation"] == 1
        kept = {s["name"]: s for s in before["steps"]}
        again = {s["name"]: s for s in after["steps"]}
        assert again["part-1"]["endedAt"] == kept["part-1"]["endedAt"]  # kept, not re-run
        assert again["part-3"]["endedAt"] > kept["part-3"]["endedAt"]  # run again
        await page.screenshot(path=artifacts / "05-run-restarted.png", full_page=True)

        # The other pages render (and take their screenshots).
        await page.goto(stack.ui + "/")
        row_text = await page.locator("tr", has_text="ui-steps").first.inner_text()
        assert "ui-steps" in row_text
        await page.screenshot(path=artifacts / "06-overview.png", full_page=True)
        await page.goto(stack.ui + "/bulk")
        await page.select_option("select[name=action]", "restart")
        await page.select_option("select[name=workflow]", "ui-steps")
        await page.select_option("select[name=status]", "complete")
        await page.click("button[name=dry_run]")
        count = page.locator("#bulk-preview .count")
        await count.wait_for(timeout=WAIT)
        assert await count.inner_text() == "1"
        assert page.url.endswith("/bulk")  # htmx fetched the count; no navigation
        await page.screenshot(path=artifacts / "07-bulk-dry-run.png", full_page=True)
        await page.goto(stack.ui + "/schedules")
        await page.screenshot(path=artifacts / "08-schedules.png", full_page=True)
        await page.goto(stack.ui + "/dlq")
        await page.screenshot(path=artifacts / "09-dead-letters-empty.png", full_page=True)

        # A run of 1,000 steps: every step on the page (the time is noted, not asserted).
        await big_run(nats_url, prefix)
        await page.goto(stack.ui + "/runs/ui-steps/big")
        await page.locator("#step-999").wait_for(timeout=WAIT)
        assert await page.locator("#steps .srow[id]").count() == 1000
        timing = await page.evaluate(
            "(() => { const n = performance.getEntriesByType('navigation')[0];"
            " return [n.responseStart - n.requestStart, n.responseEnd - n.requestStart,"
            " n.domInteractive - n.startTime, n.domContentLoadedEventEnd - n.startTime,"
            " n.loadEventEnd - n.startTime]; })()"
        )
        note = (
            f"1000-step run page in Chromium: first byte {timing[0]:.0f} ms, "
            f"whole response {timing[1]:.0f} ms, parsed {timing[2]:.0f} ms, "
            f"scripts run {timing[3]:.0f} ms, load event {timing[4]:.0f} ms\n"
        )
        (artifacts / "timing.txt").write_text(note)
        print(note)
        await page.screenshot(path=artifacts / "10-run-1000-steps.png")
        csp = [e for e in watch.errors if "Content Security Policy" in e or "Refused" in e]
        assert csp == [], csp
        assert watch.dialogs == [] and watch.errors == [], watch.errors
    finally:
        await context.close()


async def test_dead_letter_redriven_from_the_dashboard_under_a_base_path(
    browser: Any, nats_url: str, prefix: str, tmp_path: Path, artifacts: Path
) -> None:
    bug = tmp_path / "bug"
    bug.write_text("present")
    stack = await open_stack(
        nats_url,
        prefix,
        tmp_path,
        base_path="/jobs",
        ACK_WAIT="1",
        MAX_DELIVER="2",
        POISON_FILE=str(bug),
    )
    stop = asyncio.Event()

    async def respawn() -> None:
        """Workers the poison step killed are replaced, as a supervisor would."""
        while not stop.is_set():
            if not any(w.alive() for w in stack.workers):
                assert len(stack.workers) < 12, stack.logs()
                stack.start_worker()
            await asyncio.sleep(0.2)

    supervisor = asyncio.create_task(respawn())
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(WAIT)
    context.set_default_navigation_timeout(WAIT)
    page = await context.new_page()
    watch = Watch(page)
    try:
        await stack.api("POST", "/workflows/ui-poison/instances", {"instanceId": "p1"})
        await stack.until("ui-poison", "p1", {"errored"}, timeout=120)
        letters = (await stack.api("GET", "/dlq?workflow=ui-poison"))["deadLetters"]
        assert len(letters) == 1 and letters[0]["instanceId"] == "p1"
        bug.unlink()  # the fix is deployed

        await log_in(page, stack, "/dlq", artifacts)
        assert page.url.startswith(stack.origin + "/jobs/ui/dlq")
        letter = page.locator(f"#letter-{letters[0]['seq']}")
        await letter.wait_for()
        assert "p1" in await letter.inner_text()
        await page.screenshot(path=artifacts / "02-dead-letters.png", full_page=True)
        async with page.expect_navigation(url="**/jobs/ui/runs/ui-poison/p1"):
            await letter.locator("button", has_text="Re-drive").click()
        await live(page)
        await page.locator("#run-status", has_text="complete").wait_for(timeout=WAIT)
        state = await stack.instance("ui-poison", "p1")
        assert state["status"] == "complete" and state["output"] == "survived"
        await page.screenshot(path=artifacts / "03-redriven-run.png", full_page=True)
        await page.goto(stack.ui + "/dlq")
        assert await page.locator(f"#letter-{letters[0]['seq']}").count() == 0
        assert watch.dialogs == [] and watch.errors == [], watch.errors
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        await context.close()
        close_stack(stack)
