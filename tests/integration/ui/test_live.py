"""The dashboard's SSE over real HTTP (the gateway and a worker as processes): events carry
the feed's sequence as `id:`, and a reconnect with Last-Event-ID resumes after it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.browser.conftest import TOKEN, UiStack, close_stack, open_stack


async def events(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], until: str, limit: int = 50
) -> list[dict[str, str]]:
    """SSE events of `url` (keep-alive comments skipped) up to the first whose data
    contains `until`."""
    got: list[dict[str, str]] = []
    async with client.stream("GET", url, headers={"accept": "text/event-stream", **headers}) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, str] = {}
        async for line in r.aiter_lines():
            if line == "":
                if "data" in event:
                    got.append(event)
                    if until in event["data"] or len(got) >= limit:
                        return got
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                event[name] = event[name] + "\n" + value if name in event else value
    return got


async def session(stack: UiStack) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=stack.origin, timeout=60)
    response = await client.post(f"{stack.base}/login", data={"token": TOKEN})
    assert response.status_code == 303 and "hh_ui" in response.cookies
    return client


async def test_sse_ids_are_feed_sequences_and_last_event_id_resumes_after_one(
    nats_url: str, prefix: str, tmp_path: Path
) -> None:
    stack = await open_stack(nats_url, prefix, tmp_path)
    try:
        client = await session(stack)
        await stack.api(
            "POST",
            "/workflows/ui-steps/instances",
            {"instanceId": "r1", "params": {"steps": 3, "delay": 0.05, "gate": True}},
        )
        await stack.until("ui-steps", "r1", {"waiting"})
        detail = f"{stack.base}/live/runs/ui-steps/r1?after=0"
        first = await asyncio.wait_for(events(client, detail, {}, until="waiting"), 60)
        last = first[-1]
        assert last["event"] == "run" and last["id"].isdigit()
        assert 'id="run-head"' in last["data"] and 'id="step-1"' in last["data"]
        assert 'id="step-3"' not in last["data"]
        seen = int(last["id"])

        await stack.api("POST", "/workflows/ui-steps/instances/r1/events/go", {})
        await stack.until("ui-steps", "r1", {"complete"})
        # Reconnecting as a browser does: Last-Event-ID wins over the page's `after`.
        resumed = await asyncio.wait_for(
            events(client, detail, {"last-event-id": str(seen)}, until="complete"), 60
        )
        assert all(int(e["id"]) > seen for e in resumed)
        assert 'id="run-status">complete' in resumed[-1]["data"]
        assert 'id="step-3"' in resumed[-1]["data"]

        # The list stream: a row for each record written, in the list's row markup.
        rows = await asyncio.wait_for(
            events(client, f"{stack.base}/live/runs?after=0&prepend=1", {}, until="r1"), 60
        )
        assert 'id="run-ui-steps--r1"' in rows[-1]["data"] and "data-prepend" in rows[-1]["data"]
        # ...filtered like the list: a status filter that no longer matches removes the row.
        gone = await asyncio.wait_for(
            events(client, f"{stack.base}/live/runs?after=0&status=waiting", {}, until="r1"), 60
        )
        assert '<tr id="run-ui-steps--r1" data-op="remove"></tr>' in gone[-1]["data"]

        # Without a session the stream is refused, not redirected.
        anonymous = httpx.AsyncClient(base_url=stack.origin, timeout=10)
        response = await anonymous.get(detail, headers={"accept": "text/event-stream"})
        assert response.status_code == 401
        await anonymous.aclose()
        await client.aclose()

        # Every stream's ephemeral consumer went away with its client.
        async with httpx.AsyncClient(base_url=stack.origin, timeout=10) as probe:
            assert (await probe.get("/health")).status_code == 200
        from shared.bus import Names, connect

        nc = await connect(nats_url, "test-ui-probe", attempts=3)
        try:
            js = nc.jetstream()
            stream = f"KV_{Names(prefix).state_bucket}"
            for _ in range(300):
                if (await js.stream_info(stream)).state.consumer_count == 0:
                    break
                await asyncio.sleep(0.1)
            assert (await js.stream_info(stream)).state.consumer_count == 0
        finally:
            await nc.drain()
    finally:
        close_stack(stack)
