"""The overview's numbers, read from the list index and the consumers (no record scan of
finished instances).

- Finished counts per workflow and group: the index stream's per-subject message counts
  (`<ns>.ix.<workflow>.<group>`; one entry per instance in its current group).
- Active instances by status (queued, running, waiting, paused): the `active` group's
  records, read through the index, at most `ACTIVE_SCAN` of them (shown as "at least").
- The last hour: entries of the `complete` and `errored` groups appended since then (an
  instance enters its group when it finishes), counted with one direct get by start time.
- Queue depth: the workflow consumer's pending and unacknowledged messages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats.errors
import nats.js.errors

from shared.workflow import Instances
from shared.workflow.store import ACTIVE, GROUPS, InstanceStore

ACTIVE_SCAN = 2000
ACTIVE_STATUSES = ("queued", "running", "waiting", "paused")
HOUR = timedelta(hours=1)


@dataclass
class WorkflowStats:
    workflow: str
    counts: dict[str, int] = field(default_factory=dict)
    active_capped: bool = False
    finished_hour: int = 0
    errored_hour: int = 0
    pending: int | None = None
    ack_pending: int | None = None

    @property
    def failure_rate(self) -> float | None:
        if not self.finished_hour:
            return None
        return self.errored_hour / self.finished_hour

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def _since(store: InstanceStore, subject: str, since: datetime) -> int:
    """How many entries of `subject` were appended at or after `since`."""
    assert store.index is not None
    request = {
        "start_time": since.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "next_by_subj": subject,
        "batch": 1,
    }
    msgs, pending = await store._direct_batch(store.index.stream, request)
    return len(msgs) + pending if msgs else 0


async def _active(instances: Instances, workflow: str) -> tuple[Counter[str], bool]:
    store = await instances.store()
    assert store.index is not None
    items, more = await store.scan_index(
        store.index.group(workflow, ACTIVE), 1, ACTIVE_SCAN, ACTIVE_SCAN, lambda _s: True
    )
    return Counter(state.status for state in items), more is not None


async def workflow_stats(instances: Instances, now: datetime | None = None) -> list[WorkflowStats]:
    """The overview's row for every workflow the gateway routes."""
    store = await instances.store()
    assert store.index is not None
    now = now or datetime.now(UTC)
    namespace = instances.names.namespace
    subjects: dict[str, int] = {}
    with contextlib.suppress(nats.js.errors.NotFoundError):
        info = await instances.js.stream_info(
            store.index.stream, subjects_filter=f"{namespace}.ix.>"
        )
        subjects = dict(info.state.subjects or {})
    rows = []

    async def one(workflow: str) -> WorkflowStats:
        row = WorkflowStats(workflow)
        for group in GROUPS:
            if group != ACTIVE:
                row.counts[group] = subjects.get(store.index.group(workflow, group), 0)  # type: ignore[union-attr]
        if subjects.get(store.index.group(workflow, ACTIVE), 0):  # type: ignore[union-attr]
            active, row.active_capped = await _active(instances, workflow)
            for status in ACTIVE_STATUSES:
                row.counts[status] = active.get(status, 0)
        else:
            row.counts.update(dict.fromkeys(ACTIVE_STATUSES, 0))
        since = now - HOUR
        complete, errored = await asyncio.gather(
            _since(store, store.index.group(workflow, "complete"), since),  # type: ignore[union-attr]
            _since(store, store.index.group(workflow, "errored"), since),  # type: ignore[union-attr]
        )
        row.finished_hour = complete + errored
        row.errored_hour = errored
        with contextlib.suppress(nats.errors.Error, nats.js.errors.Error, TimeoutError):
            consumer = await instances.js.consumer_info(
                instances.names.stream, instances.names.consumer(workflow), timeout=2
            )
            row.pending = int(consumer.num_pending or 0)
            row.ack_pending = int(consumer.num_ack_pending or 0)
        return row

    rows = list(await asyncio.gather(*(one(wf) for wf in sorted(instances.routes))))
    return rows


def totals(rows: list[WorkflowStats]) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    for row in rows:
        counts.update(row.counts)
    finished = sum(r.finished_hour for r in rows)
    errored = sum(r.errored_hour for r in rows)
    return {
        "counts": counts,
        "finished_hour": finished,
        "errored_hour": errored,
        "failure_rate": errored / finished if finished else None,
        "pending": sum(r.pending or 0 for r in rows),
        "ack_pending": sum(r.ack_pending or 0 for r in rows),
    }
