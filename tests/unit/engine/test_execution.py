"""One delivery's execution against an in-memory store: no NATS, the engine's own logic."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from shared.bus import Names
from shared.workflow import Context, Registry, workflow
from shared.workflow.execution import Delivery, Execution, Reject
from shared.workflow.model import EventEnvelope, InstanceState, RunMessage, encode, utcnow
from shared.workflow.records import Conflict, MemoryStore

NAMES = Names("t")


class Timers:
    """Records the wake-ups an execution schedules."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, str, str, datetime, int]] = []

    async def schedule(
        self, workflow: str, instance_id: str, key: str, when: datetime, generation: int
    ) -> None:
        self.scheduled.append((workflow, instance_id, key, when, generation))


class Point(msgspec.Struct):
    x: int
    y: int


class Approval(msgspec.Struct):
    by: str


calls: dict[str, int] = {}


def called(name: str) -> int:
    calls[name] = calls.get(name, 0) + 1
    return calls[name]


async def add(a: int, b: int) -> int:
    called("add")
    return a + b


async def make_point(x: int) -> Point:
    called("make_point")
    return Point(x, x * 2)


@pytest.fixture(autouse=True)
def fresh_calls():
    calls.clear()


def start(workflow: str, iid: str, params: Any = None, generation: int = 0, **kw: Any) -> Delivery:
    message = RunMessage(kind="start", instance_id=iid, params=params, generation=generation)
    return Delivery(NAMES.run_subject(workflow), encode(message), stream_seq=1, **kw)


def wake(workflow: str, iid: str, generation: int = 0) -> Delivery:
    message = RunMessage(kind="wake", instance_id=iid, generation=generation)
    return Delivery(NAMES.wake_subject(workflow), encode(message), stream_seq=2)


def setup(
    *workflows: Any, store: MemoryStore | None = None
) -> tuple[Execution, MemoryStore, Timers]:
    Registry(workflows)  # validates ids
    store = store or MemoryStore()
    timers = Timers()
    return Execution(store, timers, NAMES), store, timers


@workflow("points")
async def points(ctx: Context[None], params: dict[str, int]) -> dict[str, Any]:
    total = await ctx.step("add", add, params["a"], params["b"])
    point = await ctx.step("point", make_point, total)
    assert isinstance(point, Point)  # built from the annotation, first run and replays alike
    return {"total": total, "point": [point.x, point.y]}


async def test_a_start_runs_every_step_and_finishes():
    """A start creates the record, runs the steps in order and completes the instance."""
    execution, store, _ = setup(points)
    assert await execution.execute(points, start("points", "i1", {"a": 2, "b": 3})) == "finished"
    state = store.peek("points", "i1")
    assert state.status == "complete"
    assert state.output == {"total": 5, "point": [5, 10]}
    assert [(s.seq, s.name, s.status, s.attempts) for s in state.steps] == [
        (0, "add", "complete", 1),
        (1, "point", "complete", 1),
    ]
    assert state.steps[1].result == {"x": 5, "y": 10}  # stored as JSON
    assert calls == {"add": 1, "make_point": 1}


async def test_a_redelivery_of_a_finished_instance_runs_nothing():
    """A start delivered again (a lost ack) finds the finished record and is only acked."""
    execution, store, _ = setup(points)
    await execution.execute(points, start("points", "i1", {"a": 1, "b": 1}))
    writes = store.writes
    outcome = await execution.execute(points, start("points", "i1", {"a": 1, "b": 1}, delivered=2))
    assert outcome == "ack"
    assert calls == {"add": 1, "make_point": 1}
    assert store.writes == writes


@workflow("interrupted")
async def interrupted(ctx: Context[None], params: None) -> list[int]:
    first = await ctx.step("first", add, 1, 1)
    second = await ctx.step("second", flaky_cancel, first)
    return [first, second]


async def flaky_cancel(n: int) -> int:
    if called("flaky_cancel") == 1:
        raise asyncio.CancelledError  # the worker stopped in the middle of this step
    return n * 10


async def test_a_replay_after_an_interruption_resumes_at_the_unfinished_step():
    """Recorded steps return their results on replay; only the unfinished step runs again."""
    execution, store, _ = setup(interrupted)
    with pytest.raises(asyncio.CancelledError):
        await execution.execute(interrupted, start("interrupted", "i1"))
    mid = store.peek("interrupted", "i1")
    assert (mid.status, [s.name for s in mid.steps]) == ("running", ["first"])
    outcome = await execution.execute(interrupted, start("interrupted", "i1", delivered=2))
    assert outcome == "finished"
    assert store.peek("interrupted", "i1").output == [2, 20]
    assert calls == {"add": 1, "flaky_cancel": 2}


@workflow("napper")
async def napper(ctx: Context[None], params: None) -> str:
    await ctx.step("before", add, 0, 0)
    await ctx.sleep("nap", timedelta(hours=1))
    await ctx.step("after", add, 1, 1)
    return "rested"


async def test_a_sleep_parks_the_instance_and_a_due_wake_finishes_it():
    """A sleep parks (waiting, a wake-up scheduled on a whole second); a wake before it is
    due parks again, a wake after it runs the rest."""
    execution, store, timers = setup(napper)
    before = utcnow()
    assert await execution.execute(napper, start("napper", "i1")) == "ack"
    parked = store.peek("napper", "i1")
    assert parked.status == "waiting"
    assert parked.steps[1].status == "sleeping"
    [(wf, iid, _key, when, generation)] = timers.scheduled
    assert (wf, iid, generation, when.microsecond) == ("napper", "i1", 0, 0)
    assert when >= before + timedelta(hours=1)

    assert await execution.execute(napper, wake("napper", "i1")) == "ack"  # early: parks again
    assert len(timers.scheduled) == 2 and calls == {"add": 1}

    def due(state: InstanceState) -> bool:
        state.steps[1].wake_at = utcnow() - timedelta(seconds=1)
        return True

    await store.mutate("napper", "i1", due)
    assert await execution.execute(napper, wake("napper", "i1")) == "finished"
    done = store.peek("napper", "i1")
    assert (done.status, done.output, done.steps[1].status) == ("complete", "rested", "complete")
    assert calls == {"add": 2}


@workflow("approval")
async def approval(ctx: Context[None], params: None) -> str:
    got = await ctx.wait_for_event("wait", "approved", timedelta(days=1), payload_type=Approval)
    assert got is not None
    return f"approved by {got.by}"


async def test_an_event_resumes_a_waiting_instance_with_a_typed_payload():
    """An event message lands in the inbox and resumes the waiting run, typed."""
    execution, store, timers = setup(approval)
    assert await execution.execute(approval, start("approval", "i1")) == "ack"
    assert store.peek("approval", "i1").status == "waiting" and len(timers.scheduled) == 1
    event = RunMessage(
        kind="event", instance_id="i1", event_type="approved", event_id="e1", payload={"by": "ops"}
    )
    delivery = Delivery(NAMES.run_subject("approval"), encode(event), stream_seq=3)
    assert await execution.execute(approval, delivery) == "finished"
    state = store.peek("approval", "i1")
    assert (state.status, state.output) == ("complete", "approved by ops")
    assert [(e.id, e.consumed_by) for e in state.inbox] == [("e1", "wait")]
    # The same event again (redelivered): kept once, nothing more to do.
    assert await execution.execute(approval, delivery) == "ack"
    assert len(store.peek("approval", "i1").inbox) == 1


async def test_an_event_starts_its_instance_under_the_event_id():
    """A trigger event is a start whose instance id is the event's internal id."""
    execution, store, _ = setup(points)
    envelope = EventEnvelope(name="points/requested", data={"a": 4, "b": 4}, id="ev123")
    delivery = Delivery(NAMES.event_subject("points/requested"), encode(envelope), stream_seq=9)
    assert await execution.execute(points, delivery) == "finished"
    state = store.peek("points", "ev123")
    assert state.trigger is not None and state.trigger.event == "points/requested"
    assert state.output == {"total": 8, "point": [8, 16]}


@pytest.mark.parametrize(
    ("subject", "data", "reason"),
    [
        (NAMES.run_subject("points"), b"{not json", "undecodable run message"),
        (NAMES.events_prefix + "points.requested", b"[1, 2]", "undecodable event"),
        (NAMES.run_subject("other"), encode(RunMessage(kind="start", instance_id="i")), None),
        (
            NAMES.run_subject("points"),
            encode(RunMessage(kind="start", instance_id="bad id!")),
            "invalid instance id",
        ),
    ],
)
async def test_a_message_that_can_never_be_processed_is_rejected(subject, data, reason):
    """Undecodable messages, foreign subjects and invalid ids are rejected; nothing stored."""
    execution, store, _ = setup(points)
    outcome = await execution.execute(points, Delivery(subject, data, stream_seq=5))
    assert isinstance(outcome, Reject)
    assert outcome.reason == (reason or f"unknown workflow for subject {subject}")
    assert store.records == {} and calls == {}


async def test_a_message_of_an_older_generation_is_dropped():
    """After a restart (generation 1), a start of generation 0 runs nothing."""
    execution, store, _ = setup(points)
    await execution.execute(points, start("points", "i1", {"a": 1, "b": 2}))

    def restart(state: InstanceState) -> bool:
        state.generation, state.status, state.steps = 1, "queued", []
        return True

    await store.mutate("points", "i1", restart)
    calls.clear()
    outcome = await execution.execute(points, start("points", "i1", {"a": 1, "b": 2}, delivered=2))
    assert outcome == "ack"
    assert calls == {} and store.peek("points", "i1").status == "queued"
    assert await execution.execute(points, wake("points", "i1", generation=0)) == "ack"
    assert await execution.execute(points, start("points", "i1", generation=1)) == "finished"
    assert store.peek("points", "i1").status == "complete"


class Params(msgspec.Struct):
    count: int


@workflow("typed", params=Params)
async def typed(ctx: Context[None], params: Params) -> int:
    return params.count


async def test_params_that_do_not_convert_error_the_instance_at_once():
    """Params that fail the workflow's params type end the instance with a clear error."""
    execution, store, _ = setup(typed)
    assert await execution.execute(typed, start("typed", "i1", {"count": "many"})) == "finished"
    state = store.peek("typed", "i1")
    assert state.status == "errored" and state.error is not None
    assert state.error.name == "InvalidParamsError"
    assert "$.count" in state.error.message


class RacingStore(MemoryStore):
    """Lets another worker record step 0 (`theirs`) just before this one writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.raced = False

    async def update(self, state: InstanceState, revision: int) -> int:
        step = state.step_at(0)
        if not self.raced and step is not None and step.status == "complete":
            self.raced = True
            current = await self.get(state.workflow, state.instance_id)
            assert current is not None
            other, other_revision = current
            winner = msgspec.structs.replace(step, result=100)
            other.put_step(winner)
            await super().update(other, other_revision)
        return await super().update(state, revision)


async def test_a_lost_race_adopts_the_winners_step_result():
    """When another worker records the same step first, this run uses its result."""
    store = RacingStore()
    execution, _, _ = setup(points, store=store)
    assert await execution.execute(points, start("points", "i1", {"a": 1, "b": 1})) == "finished"
    assert store.raced
    state = store.peek("points", "i1")
    assert state.steps[0].result == 100  # theirs, not 2
    assert state.output == {"total": 100, "point": [100, 200]}


async def test_the_memory_store_refuses_stale_writes():
    """The in-memory store keeps the bucket's rules: create once, CAS on the revision."""
    store = MemoryStore()
    now = utcnow()
    state = InstanceState(workflow="w", instance_id="i", status="queued", created_at=now)
    first = await store.create(state)
    assert first is not None and await store.create(state) is None
    state.status = "running"
    second = await store.update(state, first)
    with pytest.raises(Conflict):
        await store.update(state, first)
    got = await store.get("w", "i")
    assert got is not None and (got[0].status, got[1]) == ("running", second)
