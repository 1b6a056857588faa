"""Live updates without polling: Server-Sent Events fed by the change feed
(`shared.workflow.feed`), one ordered JetStream consumer per open page.

Each event's `id:` is the record write's stream sequence. The page asks from the sequence
it was rendered at (`?after=`); a browser that reconnects sends `Last-Event-ID`, which
wins, so a dropped connection resumes after the last write it showed. Writes that arrive
together are coalesced (the latest record per key is rendered once per `COALESCE`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from litestar import get
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from services.gateway.engine import EngineDep
from services.gateway.ui.render import render, waterfall
from services.gateway.ui.views import AnyRequest, Refused, RunFilter, instances_of, ui_of
from shared.bus import INSTANCE_ID
from shared.workflow import Instances
from shared.workflow.feed import Change, changes

KEEPALIVE = 15.0  # seconds between comments on a quiet stream (proxies close idle ones)
COALESCE = 0.15  # seconds to gather writes that come together before rendering
RETRY_MS = 2000  # the browser's reconnect delay


def resume_from(request: AnyRequest) -> int | None:
    """The sequence to continue after: Last-Event-ID if the browser sent one, else `after`."""
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value and value.isdigit() and len(value) <= 18:
            return int(value)
    return None


async def _batches(
    instances: Instances,
    after: int | None,
    workflow: str | None = None,
    instance_id: str | None = None,
) -> AsyncIterator[list[Change] | None]:
    """Writes of the feed in batches (None when quiet for KEEPALIVE seconds)."""
    queue: asyncio.Queue[Change] = asyncio.Queue()

    async def pump() -> None:
        store = await instances.store()  # opens records sealed for their user
        feed = changes(
            instances.nc,
            instances.names,
            after=after,
            workflow=workflow,
            instance_id=instance_id,
            decode=store.decoded,
        )
        async for change in feed:
            if change is not None:
                queue.put_nowait(change)

    task = asyncio.create_task(pump(), name="ui-feed")
    try:
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                if task.done():
                    task.result()  # the feed failed: end the stream, the browser reconnects
                yield None
                continue
            await asyncio.sleep(COALESCE)
            batch = [first]
            while not queue.empty():
                batch.append(queue.get_nowait())
            yield batch
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _latest(batch: list[Change]) -> list[Change]:
    """The last write of each key in a batch, in stream order."""
    last: dict[str, Change] = {}
    for change in batch:
        last[change.key] = change
    return sorted(last.values(), key=lambda c: c.seq)


def _stream(messages: AsyncIterator[ServerSentEventMessage]) -> ServerSentEvent:
    return ServerSentEvent(
        messages,
        retry_duration=RETRY_MS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@get("/live/runs")
async def live_runs(request: AnyRequest, engine: EngineDep) -> ServerSentEvent:
    """The runs list: each written record that matches the list's filters as a row (new
    rows go on top of the first page), one that no longer matches as a removal."""
    instances = instances_of(engine)
    where = RunFilter(request.query_params, instances.routes)
    prepend = request.query_params.get("prepend") == "1"
    after = resume_from(request)
    base = ui_of(request).base

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        async for batch in _batches(instances, after, where.workflow or None):
            if batch is None:
                yield ServerSentEventMessage(comment="keepalive")
                continue
            parts = []
            for change in _latest(batch):
                state = change.record
                if state is not None and where.matches(state):
                    parts.append(render("_run_row.html", s=state, base=base, prepend=prepend))
                else:
                    key = f"run-{change.workflow}--{change.instance_id}"
                    parts.append(f'<tr id="{key}" data-op="remove"></tr>')
            yield ServerSentEventMessage(data="".join(parts), event="run", id=batch[-1].seq)

    return _stream(messages())


@get("/live/runs/{workflow:str}/{instance_id:str}")
async def live_run(
    request: AnyRequest, engine: EngineDep, workflow: FromPath[str], instance_id: FromPath[str]
) -> ServerSentEvent:
    """One run: its header, steps (waterfall) and inbox, re-rendered on each write."""
    instances = instances_of(engine)
    if workflow not in instances.routes or not INSTANCE_ID.fullmatch(instance_id):
        raise Refused(404, "no such instance")
    after = resume_from(request)
    base = ui_of(request).base

    async def messages() -> AsyncIterator[ServerSentEventMessage]:
        async for batch in _batches(instances, after, workflow=workflow, instance_id=instance_id):
            if batch is None:
                yield ServerSentEventMessage(comment="keepalive")
                continue
            change = batch[-1]
            if change.record is None:
                continue
            rows, span = waterfall(change.record)
            context: dict[str, Any] = {"s": change.record, "rows": rows, "span": span, "base": base}
            html = render("_run_live.html", **context)
            yield ServerSentEventMessage(data=html, event="run", id=change.seq)

    return _stream(messages())
