"""Engine behaviour against a real nats-server: replay, retries, events, control, poison."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from shared.bus import Names, publish
from shared.errors import NonRetryableError, RetryAfterError
from shared.workflow import Context, Registry, RetryPolicy, workflow
from tests.support.engine import engine_settings, prepare, running_worker, wait_all, wait_for


async def test_replay_skips_recorded_steps(nc, nats_url, prefix):
    """After a crash-like halt mid-run, a new delivery replays without re-running steps."""
    runs = {"a": 0, "b": 0}
    gate = asyncio.Event()

    async def count(name):
        runs[name] += 1
        return runs[name]

    @workflow("replayer")
    async def replayer(ctx: Context[None], params):
        a = await ctx.step("a", count, "a")
        await ctx.sleep("between", timedelta(seconds=1))  # a second delivery follows
        b = await ctx.step("b", count, "b")
        gate.set()
        return {"a": a, "b": b}

    registry = Registry([replayer])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("replayer", {}, "x")
        done = await wait_for(instances, "replayer", "x")
    assert done.status == "complete"
    assert done.output == {"a": 1, "b": 1}
    assert runs == {"a": 1, "b": 1}


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ("constant", [0.3, 0.3, 0.3]),
        ("linear", [0.3, 0.6, 0.9]),
        ("exponential", [0.3, 0.6, 1.2]),
    ],
)
async def test_retry_attempts_and_delays(nc, nats_url, prefix, backoff, expected):
    """A step failing 3 times then succeeding runs exactly 4 times, waiting as the policy says."""
    stamps: list[float] = []

    async def flaky():
        stamps.append(time.monotonic())
        if len(stamps) <= 3:
            raise RuntimeError(f"failure {len(stamps)}")
        return "ok"

    policy = RetryPolicy(limit=3, delay=0.3, backoff=backoff)

    @workflow("flaky")
    async def flaky_wf(ctx: Context[None], params):
        return await ctx.step("call", flaky, retry=policy)

    registry = Registry([flaky_wf])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("flaky", {}, "f")
        done = await wait_for(instances, "flaky", "f")
    assert done.status == "complete" and done.output == "ok"
    assert len(stamps) == 4
    assert done.steps[0].attempts == 4
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    for gap, want in zip(gaps, expected, strict=True):
        assert gap >= want - 0.02, (gaps, expected)
    assert [policy.delay_before(n) for n in (1, 2, 3)] == pytest.approx(expected)


async def test_retries_exhausted_record_error_and_fail_instance(nc, nats_url, prefix):
    """A step that always fails runs limit+1 times; the instance errors with its error."""
    attempts = 0

    async def broken():
        nonlocal attempts
        attempts += 1
        raise ValueError("upstream said no")

    @workflow("broken")
    async def broken_wf(ctx: Context[None], params):
        return await ctx.step("call", broken, retry=RetryPolicy(limit=2, delay=0.05))

    registry = Registry([broken_wf])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("broken", {}, "b")
        done = await wait_for(instances, "broken", "b")
    assert attempts == 3
    assert done.status == "errored"
    assert done.error is not None
    assert (done.error.name, done.error.message) == ("ValueError", "upstream said no")
    step = done.steps[0]
    assert (step.status, step.attempts, step.error.name) == ("errored", 3, "ValueError")


async def test_timeout_and_non_retryable(nc, nats_url, prefix):
    """A timed-out attempt is retried; a NonRetryableError fails at once (1 attempt)."""
    calls = {"slow": 0, "fatal": 0}

    async def slow():
        calls["slow"] += 1
        await asyncio.sleep(10)

    async def fatal():
        calls["fatal"] += 1
        raise NonRetryableError("bad request: no such job")

    @workflow("timeouts")
    async def timeouts(ctx: Context[None], params):
        if params["which"] == "slow":
            return await ctx.step("slow", slow, timeout=0.2, retry=RetryPolicy(limit=1, delay=0.05))
        return await ctx.step("fatal", fatal, retry=RetryPolicy(limit=5, delay=0.05))

    registry = Registry([timeouts])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("timeouts", {"which": "slow"}, "slow")
        await instances.trigger("timeouts", {"which": "fatal"}, "fatal")
        slow_state = await wait_for(instances, "timeouts", "slow")
        fatal_state = await wait_for(instances, "timeouts", "fatal")
    assert calls == {"slow": 2, "fatal": 1}
    assert slow_state.status == "errored" and slow_state.error.name == "StepTimeoutError"
    assert "timed out after 0.2s" in slow_state.error.message
    assert fatal_state.status == "errored" and fatal_state.error.name == "NonRetryableError"
    assert fatal_state.steps[0].attempts == 1


async def test_retry_after_waits_as_asked_durably(nc, nats_url, prefix):
    """RetryAfterError waits the upstream's delay; a long wait parks the instance (waiting)."""
    stamps: list[float] = []

    async def limited():
        stamps.append(time.time())
        if len(stamps) == 1:
            raise RetryAfterError("429 rate limited", timedelta(seconds=6))
        return "through"

    @workflow("patient")
    async def patient(ctx: Context[None], params):
        return await ctx.step("call", limited, retry=RetryPolicy(limit=3, delay=0.05))

    registry = Registry([patient])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("patient", {}, "p")
        parked = await wait_for(instances, "patient", "p", lambda s: s.status == "waiting")
        assert parked.steps[0].status == "retrying"
        assert parked.steps[0].error.message == "429 rate limited"
        done = await wait_for(instances, "patient", "p")
    assert done.status == "complete" and done.output == "through"
    assert len(stamps) == 2 and stamps[1] - stamps[0] >= 6.0


async def test_wait_for_event_times_out_with_none(nc, nats_url, prefix):
    """wait_for_event returns None when the timeout passes first."""

    @workflow("waiter")
    async def waiter(ctx: Context[None], params):
        got = await ctx.wait_for_event("approval", "approved", timedelta(seconds=1))
        return {"got": got}

    registry = Registry([waiter])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("waiter", {}, "w")
        done = await wait_for(instances, "waiter", "w")
    assert done.status == "complete" and done.output == {"got": None}
    step = done.steps[0]
    assert step.ended_at >= step.wake_at


async def test_event_sent_before_the_wait_is_kept(nc, nats_url, prefix):
    """An event that arrives while the run is still busy is consumed by the later wait."""
    release = asyncio.Event()

    async def busy():
        await release.wait()
        return 1

    @workflow("early")
    async def early(ctx: Context[None], params):
        await ctx.step("busy", busy)
        return await ctx.wait_for_event("approval", "approved", timedelta(minutes=5))

    registry = Registry([early])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("early", {}, "e")
        await wait_for(instances, "early", "e", lambda s: s.status == "running")
        await instances.send_event("early", "e", "approved", {"ok": True})
        await wait_for(instances, "early", "e", lambda s: len(s.inbox) == 1)
        release.set()
        done = await wait_for(instances, "early", "e")
    assert done.output == {"ok": True}


async def test_changed_step_sequence_is_detected(nc, nats_url, prefix):
    """Code changed under a parked instance: the replay stops with NonDeterminismError and
    runs nothing past the divergence."""
    ran: list[str] = []

    async def mark(name):
        ran.append(name)
        return name

    def version(second: str):
        @workflow("evolving")
        async def evolving(ctx: Context[None], params):
            await ctx.step("fetch", mark, "fetch")
            await ctx.sleep("pause", timedelta(seconds=1))
            await ctx.step(second, mark, second)
            return "done"

        return Registry([evolving])

    settings = engine_settings(prefix)
    instances = await prepare(nc, version("analyze"), settings)
    async with running_worker(nats_url, version("analyze"), settings):
        await instances.trigger("evolving", {}, "v")
        await wait_for(instances, "evolving", "v", lambda s: s.status == "waiting")
    # v2 renames the step after the sleep and inserts one before it.

    @workflow("evolving")
    async def evolving_v2(ctx: Context[None], params):
        await ctx.step("fetch", mark, "fetch")
        await ctx.step("inserted", mark, "inserted")
        await ctx.sleep("pause", timedelta(seconds=1))
        return "done"

    v2 = Registry([evolving_v2])
    async with running_worker(nats_url, v2, settings):
        done = await wait_for(instances, "evolving", "v")
    assert done.status == "errored"
    assert done.error.name == "NonDeterminismError"
    assert "'inserted' in the code but 'pause'" in done.error.message
    assert ran == ["fetch"]


async def test_undecodable_message_is_dead_lettered_once(nc, nats_url, prefix):
    """Garbage on a run subject is dead-lettered on its first delivery; others complete."""

    @workflow("plain")
    async def plain(ctx: Context[None], params):
        return await ctx.step("one", lambda: 1)

    registry = Registry([plain])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    names = Names(prefix)
    js = nc.jetstream()
    await publish(js, names.run_subject("plain"), b"\xff not json", msg_id="garbage")
    await publish(
        js, names.run_subject("plain"), b'{"kind":"start","instance_id":"../x"}', msg_id="bad-id"
    )
    deep = b'{"kind":"start","instance_id":"deep","params":' + b"[" * 5000 + b"]" * 5000 + b"}"
    await publish(js, names.run_subject("plain"), deep, msg_id="too-deep")
    async with running_worker(nats_url, registry, settings):
        for i in range(5):
            await instances.trigger("plain", {}, f"p{i}")
        for i in range(5):
            assert (await wait_for(instances, "plain", f"p{i}")).status == "complete"
        for _ in range(100):
            if (await js.stream_info(names.dlq_stream)).state.messages == 3:
                break
            await asyncio.sleep(0.05)
    assert (await js.stream_info(names.dlq_stream)).state.messages == 3
    consumer = await js.consumer_info(names.stream, names.consumer("plain"))
    assert consumer.num_ack_pending == 0 and consumer.num_redelivered == 0


async def test_oversize_result_fails_the_instance_without_redelivery(nc, nats_url, prefix):
    """A step returning 2 MB fails its instance with a typed error in one delivery."""

    @workflow("big")
    async def big(ctx: Context[None], params):
        return await ctx.step("huge", lambda: "x" * 2_000_000)

    registry = Registry([big])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("big", {}, "big")
        done = await wait_for(instances, "big", "big")
        names = Names(prefix)
        info = await nc.jetstream().consumer_info(names.stream, names.consumer("big"))
    assert done.status == "errored" and done.error.name == "StepResultTooLargeError"
    assert done.steps[0].attempts == 1
    assert info.num_redelivered == 0


async def test_long_step_keeps_its_message(nc, nats_url, prefix):
    """RELIABILITY R5: 30 runs whose step (7 s) far outlives ack_wait (2 s) while the
    worker heartbeats (every ack_wait/3): every message is delivered exactly once."""
    calls: Counter[str] = Counter()

    async def long_step(run: str) -> str:
        calls[run] += 1
        await asyncio.sleep(7.0)
        return "done"

    @workflow("long")
    async def long_wf(ctx: Context[None], params):
        return await ctx.step("long", long_step, ctx.instance_id)

    registry = Registry([long_wf])
    settings = engine_settings(prefix, ack_wait=2.0, worker_concurrency=32)
    instances = await prepare(nc, registry, settings)
    ids = [f"l{i}" for i in range(30)]
    async with running_worker(nats_url, registry, settings):
        await asyncio.gather(*(instances.trigger("long", {}, i) for i in ids))
        states, _ = await wait_all(instances, "long", ids, timeout=120)
        info = await nc.jetstream().consumer_info(
            Names(prefix).stream, Names(prefix).consumer("long")
        )
    assert all(s.status == "complete" for s in states), states
    assert calls == Counter({i: 1 for i in ids}), calls
    # The consumer's delivery sequence counts redeliveries too: 30 means each message
    # was delivered once (num_redelivered only counts those still pending).
    assert info.delivered.consumer_seq == 30, info.delivered


async def test_pause_resume_terminate_restart(nc, nats_url, prefix):
    """Control operations: pause stops at a step boundary, resume continues, terminate
    ends, restart runs from the start in a new generation."""
    gate = asyncio.Event()
    ran: list[str] = []

    async def first():
        ran.append("first")
        await gate.wait()
        return 1

    async def second():
        ran.append("second")
        return 2

    @workflow("controlled")
    async def controlled(ctx: Context[None], params):
        a = await ctx.step("first", first)
        b = await ctx.step("second", second)
        return a + b

    registry = Registry([controlled])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        await instances.trigger("controlled", {}, "c")
        await wait_for(instances, "controlled", "c", lambda s: s.status == "running")
        paused = await instances.pause("controlled", "c")
        assert paused.status == "paused"
        gate.set()
        state = await wait_for(
            instances, "controlled", "c", lambda s: len(s.steps) == 1 and s.status == "paused"
        )
        assert ran == ["first"]
        await instances.resume("controlled", "c")
        done = await wait_for(instances, "controlled", "c")
        assert done.status == "complete" and done.output == 3 and ran == ["first", "second"]
        restarted = await instances.restart("controlled", "c")
        assert restarted.generation == 1 and restarted.steps == []
        again = await wait_for(
            instances, "controlled", "c", lambda s: s.status == "complete" and s.generation == 1
        )
        assert again.output == 3 and ran == ["first", "second", "first", "second"]
        gate.clear()
        await instances.trigger("controlled", {}, "t")
        await wait_for(instances, "controlled", "t", lambda s: s.status == "running")
        await instances.terminate("controlled", "t")
        gate.set()
        await asyncio.sleep(0.3)
        ended = await instances.get("controlled", "t")
    assert state.steps[0].status == "complete"
    assert ended.status == "terminated" and len(ended.steps) <= 1


async def test_same_instance_id_twice_starts_one_run(nc, nats_url, prefix):
    """Triggering one instance id twice creates one instance and runs it once."""
    count = 0

    async def once():
        nonlocal count
        count += 1
        return count

    @workflow("idem")
    async def idem(ctx: Context[None], params):
        return await ctx.step("once", once)

    registry = Registry([idem])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    async with running_worker(nats_url, registry, settings):
        _, first = await instances.trigger("idem", {"n": 1}, "same")
        done = await wait_for(instances, "idem", "same")
        _, second = await instances.trigger("idem", {"n": 2}, "same")
        await asyncio.sleep(0.5)
    assert (first, second) == (True, False)
    assert done.output == 1 and count == 1


async def test_thousand_sleepers_do_not_block_new_work(nc, nats_url, prefix):
    """1,000 instances in a durable sleep hold no worker: a new instance still completes."""

    @workflow("dozer")
    async def dozer(ctx: Context[None], params):
        await ctx.sleep("long-nap", timedelta(hours=1))
        return "woke"

    @workflow("quick")
    async def quick(ctx: Context[None], params):
        return await ctx.step("only", lambda: "quick")

    registry = Registry([dozer, quick])
    settings = engine_settings(prefix, worker_concurrency=32)
    instances = await prepare(nc, registry, settings)
    names = Names(prefix)
    async with running_worker(nats_url, registry, settings):
        js = nc.jetstream()
        from shared.workflow.model import RunMessage, encode

        await asyncio.gather(
            *(
                publish(
                    js,
                    names.run_subject("dozer"),
                    encode(RunMessage(kind="start", instance_id=f"d{i}", params={})),
                    msg_id=f"d{i}",
                )
                for i in range(1000)
            )
        )
        for _ in range(1200):
            info = await js.consumer_info(names.stream, names.consumer("dozer"))
            if info.num_pending == 0 and info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.1)
        assert info.num_pending == 0 and info.num_ack_pending == 0
        sample = await instances.get("dozer", "d999")
        assert sample.status == "waiting"
        await instances.trigger("quick", {}, "q")
        done = await wait_for(instances, "quick", "q", timeout=30)
    assert done.status == "complete"
    assert done.ended_at < datetime.now(UTC) + timedelta(seconds=1)


async def test_gateway_style_ensure_does_not_undo_a_workers_limit(nc, prefix):
    """ensure_consumers(create_only=True) creates missing consumers but keeps existing ones."""
    from shared.workflow import ensure_consumers

    @workflow("tight", concurrency=2)
    async def tight(ctx: Context[None], params):
        return None

    settings = engine_settings(prefix)
    await prepare(nc, Registry([tight]), settings)
    names = Names(prefix)
    js = nc.jetstream()
    specs = [("tight", (), 5), ("other", (), 7)]
    await ensure_consumers(js, names, specs, settings, create_only=True)
    assert (
        await js.consumer_info(names.stream, names.consumer("tight"))
    ).config.max_ack_pending == 2
    assert (
        await js.consumer_info(names.stream, names.consumer("other"))
    ).config.max_ack_pending == 7
    await ensure_consumers(js, names, specs, settings)
    assert (
        await js.consumer_info(names.stream, names.consumer("tight"))
    ).config.max_ack_pending == 5


async def test_restart_under_a_running_step_keeps_the_old_result_out(nc, prefix):
    """A run that finishes a step after its instance was restarted records nothing into
    the new generation: it halts instead."""
    from shared.workflow.context import Halt, Run
    from shared.workflow.model import StepRecord, utcnow

    @workflow("restartable")
    async def restartable(ctx: Context[None], params):
        return None

    registry = Registry([restartable])
    instances = await prepare(nc, registry, engine_settings(prefix))
    await instances.trigger("restartable", {}, "r")
    store = await instances.store()
    state, revision = await store.get("restartable", "r")
    run = Run(store, restartable, state, revision)  # the old run, generation 0
    await instances.restart("restartable", "r")
    done = StepRecord(
        seq=0,
        name="slow",
        status="complete",
        attempts=1,
        ended_at=utcnow(),
        result="from the old run",
    )
    with pytest.raises(Halt):
        await run.record_step(done)
    after = await instances.get("restartable", "r")
    assert after.generation == 1
    assert after.steps == []


@pytest.mark.parametrize("direct", [True, False])
async def test_list_pages_through_instances_with_filters(nc, nats_url, prefix, direct):
    """Listing pages by cursor through every instance once, by workflow and by status,
    with batched direct gets and with the consumer fallback alike."""

    @workflow("listed")
    async def listed(ctx: Context[None], params):
        if params["fail"]:
            raise NonRetryableError("no")
        return await ctx.step("one", lambda: 1)

    @workflow("other")
    async def other(ctx: Context[None], params):
        return None

    registry = Registry([listed, other])
    settings = engine_settings(prefix)
    instances = await prepare(nc, registry, settings)
    (await instances.store()).direct = direct
    async with running_worker(nats_url, registry, settings):
        for i in range(23):
            await instances.trigger("listed", {"fail": i % 4 == 0}, f"x{i:02d}")
        await instances.trigger("other", {}, "o1")
        for i in range(23):
            await wait_for(instances, "listed", f"x{i:02d}")
        await wait_for(instances, "other", "o1")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await instances.list("listed", limit=10, cursor=cursor)
        pages += 1
        seen.extend(s.instance_id for s in page.items)
        assert all(s.workflow == "listed" for s in page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == [f"x{i:02d}" for i in range(23)]
    assert pages == 3
    errored = await instances.list("listed", status="errored", limit=50)
    assert sorted(s.instance_id for s in errored.items) == [
        "x00",
        "x04",
        "x08",
        "x12",
        "x16",
        "x20",
    ]
    assert errored.next_cursor is None
    everything = await instances.list(limit=100)
    assert len(everything.items) == 24


async def test_same_event_id_runs_once_also_after_the_dedup_window(nc, nats_url, prefix):
    """The same event id five times within JetStream's window is stored once; once more
    after the window it is stored again, yet the instance still runs once (G2)."""
    from shared.workflow import EventEnvelope

    runs = 0

    async def once():
        nonlocal runs
        runs += 1
        return runs

    @workflow("dedup", on="test/dedup.requested")
    async def dedup(ctx: Context[None], params):
        return await ctx.step("once", once)

    registry = Registry([dedup])
    settings = engine_settings(prefix, dedup_window=2.0)
    instances = await prepare(nc, registry, settings)
    names = Names(prefix)
    js = nc.jetstream()
    event = EventEnvelope(name="test/dedup.requested", data={"n": 1}, id="client-id-1")
    async with running_worker(nats_url, registry, settings):
        for _ in range(5):
            [(internal, started)] = await instances.send([event])
        assert (await js.stream_info(names.stream)).state.messages == 1
        done = await wait_for(instances, "dedup", started[0].instance_id)
        await asyncio.sleep(3)  # past the 2 s duplicate window
        [(again, _)] = await instances.send([event])
        assert again == internal
        stream = await js.stream_info(names.stream)
        assert stream.state.messages == 2
        # The worker has had (and acked) the second message: only then does `runs == 1`
        # below prove the guard held, rather than that the message was never read.
        for _ in range(400):
            info = await js.consumer_info(names.stream, names.consumer("dedup"))
            if info.ack_floor.stream_seq >= stream.state.last_seq:
                break
            await asyncio.sleep(0.05)
        assert info.ack_floor.stream_seq >= stream.state.last_seq, info
        assert info.num_pending == 0 and info.num_ack_pending == 0, info
        assert info.delivered.stream_seq == stream.state.last_seq
        after = await instances.get("dedup", started[0].instance_id)
    assert done.output == 1 and after.output == 1
    assert runs == 1


async def test_each_service_records_its_own_workflows_dead_letters(nc, nats_url, prefix):
    """Two services' workers on one namespace: every max-deliveries advisory becomes a dead
    letter of its own workflow; none is taken and dropped by the other service's worker."""
    import msgspec

    from shared.workflow.topology import advisory_subject

    async def noop():
        return 1

    @workflow("svc-a")
    async def svc_a(ctx: Context[None], params):
        return await ctx.step("s", noop)

    @workflow("svc-b")
    async def svc_b(ctx: Context[None], params):
        return await ctx.step("s", noop)

    names = Names(prefix)
    settings = engine_settings(prefix)
    reg_a, reg_b = Registry([svc_a]), Registry([svc_b])
    await prepare(nc, reg_a, settings)
    await prepare(nc, reg_b, settings)
    js = nc.jetstream()
    async with running_worker(nats_url, reg_a, settings), running_worker(nats_url, reg_b, settings):
        # Each worker's pull loops are bound before the advisories arrive.
        await asyncio.sleep(1.0)
        for i in range(20):
            wf = "svc-a" if i % 2 else "svc-b"
            advisory = {
                "type": "io.nats.jetstream.advisory.v1.max_deliver",
                "stream": names.stream,
                "consumer": names.consumer(wf),
                "stream_seq": 900_000 + i,  # no such message: only the letter is written
                "deliveries": 8,
            }
            await js.publish(advisory_subject(names, wf), msgspec.json.encode(advisory))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            info = await js.stream_info(names.dlq_stream)
            if info.state.messages >= 20:
                break
            await asyncio.sleep(0.2)
    per_workflow = {}
    for wf in ("svc-a", "svc-b"):
        info = await js.stream_info(names.dlq_stream, subjects_filter=names.dlq_subject(wf))
        per_workflow[wf] = sum((info.state.subjects or {}).values())
    assert per_workflow == {"svc-a": 10, "svc-b": 10}
