"""The workflow author's side of the engine: `ctx.step`, `ctx.sleep`, `ctx.wait_for_event`.

A run replays the workflow function from the top on every delivery. Each step call takes
the next position in the run's step sequence; a position already recorded returns its
stored result (or raises its stored failure) without running. Recording is a
compare-and-set on the instance record, so two workers racing on one instance record one
result per step, and the loser adopts the winner's.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import inspect
import logging
import time
import typing
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, TypeVarTuple, cast, overload

import msgspec
import msgspec.inspect
import nats.errors
import nats.js.errors

from shared.errors import (
    NonDeterminismError,
    NonRetryableError,
    RetryAfterError,
    StepFailedError,
    StepResultTooLargeError,
    StepTimeoutError,
)
from shared.logs import STEP
from shared.metrics import metrics
from shared.workflow.cache import CachePolicy, StepServices
from shared.workflow.gates import Feedback, GateFailed, Validate, add_usage, enter, notify_gate
from shared.workflow.model import (
    AttemptOutput,
    ErrorInfo,
    InstanceState,
    StepRecord,
    Trigger,
    encode,
    utcnow,
)
from shared.workflow.ratelimit import StepLimit, spends_of
from shared.workflow.records import Conflict, InstanceStore
from shared.workflow.retry import RetryPolicy, seconds

log = logging.getLogger(__name__)

D = TypeVar("D")
T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")
Ts = TypeVarTuple("Ts")

# Retry waits up to this long are slept in the worker (the message kept alive by
# heartbeats); longer ones suspend the instance durably and free the worker.
INLINE_RETRY_MAX = 5.0
MAX_STEP_RESULT_BYTES = 512 * 1024
# A rejected attempt's value is kept for review up to this size (the record is one KV value).
MAX_KEPT_OUTPUT_BYTES = 96 * 1024


class Suspend(BaseException):
    """The run cannot go on before `until`: park it and schedule a wake-up.

    A BaseException so that `except Exception` in workflow code cannot swallow it.
    """

    def __init__(self, until: datetime, key: str, status: str = "waiting") -> None:
        super().__init__(f"suspended until {until.isoformat()}")
        self.until = until
        self.key = key
        self.status = status


class Halt(BaseException):
    """The instance was paused, terminated or restarted under the run: stop quietly."""


class EngineUnavailable(BaseException):
    """NATS failed while recording; the message is handed back for a later delivery."""


INFRA_ERRORS = (nats.errors.Error, asyncio.TimeoutError, ConnectionError, OSError)


def error_info(exc: BaseException) -> ErrorInfo:
    if isinstance(exc, StepFailedError):
        return ErrorInfo(name=exc.error_name, message=exc.error_message)
    return ErrorInfo(name=type(exc).__name__, message=str(exc) or type(exc).__name__)


def step_key(name: str) -> str:
    """A subject-safe token for a step name (timer subjects)."""
    import hashlib

    return hashlib.sha1(name.encode()).hexdigest()[:16]


class StepDefaults(Protocol):
    """What a run needs of its workflow: the defaults of its steps (a `Workflow` has them)."""

    @property
    def id(self) -> str: ...

    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def step_timeout(self) -> timedelta | None: ...


class _Infer:
    """The default of `result_type`: take the step function's return annotation."""

    def __repr__(self) -> str:
        return "INFER"


INFER: Any = _Infer()


class Run:
    """One delivery's execution of one instance: the record, its revision, the cursor."""

    def __init__(
        self,
        store: InstanceStore,
        wf: StepDefaults,
        state: InstanceState,
        revision: int,
        crash_at: Callable[[str], None] | None = None,
    ) -> None:
        # A fault hook for crash tests (WF_CRASH_AT): called at named points.
        self.crash_at = crash_at or (lambda point: None)
        self.store = store
        self.wf = wf
        self.state = state
        self.revision = revision
        self.generation = state.generation
        self.cursor = 0
        self.names: Counter[str] = Counter()
        self.lock = asyncio.Lock()
        # The step cache and rate limits of the worker (set by it), for `cache=`/`limit=`.
        self.services: StepServices | None = None
        # Reports the record after each completed step (end-user progress; set by the
        # execution when the workflow declares progress).
        self.progress: Callable[[InstanceState], Awaitable[None]] | None = None

    def services_for(self, key: str) -> StepServices:
        if self.services is None:
            raise RuntimeError(f"step {key!r} uses the step cache or limits; this run has none")
        return self.services

    def next_position(self, name: str) -> tuple[int, str]:
        if not isinstance(name, str) or not name:
            raise ValueError("a step needs a non-empty name")
        self.names[name] += 1
        count = self.names[name]
        key = name if count == 1 else f"{name}#{count}"
        seq = self.cursor
        self.cursor += 1
        recorded = self.state.step_at(seq)
        if recorded is not None and recorded.name != key:
            raise NonDeterminismError(
                f"step {seq + 1} of instance {self.state.instance_id!r} is {key!r} in the code "
                f"but {recorded.name!r} in the recorded history: the workflow changed under a "
                "running instance"
            )
        return seq, key

    async def reload(self) -> None:
        current = await self.store.get(self.state.workflow, self.state.instance_id)
        if current is None:
            raise Halt
        self.state, self.revision = current

    async def commit_unchecked(self, change: Callable[[InstanceState], T]) -> T:
        """`commit` without the pause/terminate check afterwards."""
        return await self.commit(change, control=False)

    async def commit(self, change: Callable[[InstanceState], T], *, control: bool = True) -> T:
        """Apply `change` to the record and CAS it; on conflict reload and apply again.

        `change` raises Unchanged(value) when there is nothing to write. With `control`,
        a record found paused, terminated or restarted afterwards raises Halt.
        """
        async with self.lock:
            while True:
                if self.state.generation != self.generation:
                    # Restarted under this run: nothing of the old run may land in the new.
                    raise Halt
                try:
                    result = change(self.state)
                except Unchanged as same:
                    return cast(T, same.value)
                self.state.updated_at = utcnow()
                try:
                    self.revision = await self.store.update(self.state, self.revision)
                except Conflict:
                    await self._reload_or_unavailable()
                    continue
                except INFRA_ERRORS as exc:
                    raise EngineUnavailable(str(exc)) from exc
                break
            if control:
                self.check_control()
            return result

    async def _reload_or_unavailable(self) -> None:
        try:
            await self.reload()
        except INFRA_ERRORS as exc:
            raise EngineUnavailable(str(exc)) from exc

    def check_control(self) -> None:
        if self.state.generation != self.generation or self.state.status in (
            "paused",
            "terminated",
            "errored",
            "complete",
            "queued",
        ):
            raise Halt

    async def record_step(self, record: StepRecord) -> StepRecord:
        """Record a step's outcome; if a final one is recorded already, return that instead."""
        mine = msgspec.structs.replace(record)

        def change(state: InstanceState) -> StepRecord:
            existing = state.step_at(mine.seq)
            if existing is not None and existing.status in ("complete", "errored"):
                raise Unchanged(existing)
            state.put_step(mine)
            return mine

        recorded = await self.commit(change)
        if recorded is mine and mine.status == "complete":
            self.crash_at("after_record")
            if self.progress is not None:
                await self.progress(self.state)
        return recorded


class Unchanged(Exception):
    """Raised by a change function: nothing to write; `value` is the commit's result."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Context(Generic[D]):
    """What a workflow function receives: its dependencies and the durable primitives."""

    def __init__(self, run: Run, deps: D) -> None:
        self._run = run
        self.deps = deps
        self._metrics = metrics().workflow(run.wf.id)

    @property
    def instance_id(self) -> str:
        return self._run.state.instance_id

    @property
    def workflow_id(self) -> str:
        return self._run.state.workflow

    @property
    def generation(self) -> int:
        """The instance's generation (bumped by each restart)."""
        return self._run.generation

    @property
    def trigger(self) -> Trigger | None:
        return self._run.state.trigger

    @overload
    async def step(
        self,
        name: str,
        fn: Callable[[*Ts], Awaitable[T]],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: timedelta | float | None = None,
        cache: CachePolicy | None = None,
        limit: StepLimit[T] | None = None,
        validate: Validate[T] | Callable[[T], Sequence[str]] | None = None,
    ) -> T: ...

    @overload
    async def step(
        self,
        name: str,
        fn: Callable[[*Ts], Awaitable[object]],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: timedelta | float | None = None,
        result_type: type[R],
        cache: CachePolicy | None = None,
        limit: StepLimit[Any] | None = None,
        validate: Validate[R] | Callable[[R], Sequence[str]] | None = None,
    ) -> R: ...

    async def step(
        self,
        name: str,
        fn: Callable[[*Ts], Awaitable[object]],
        *args: *Ts,
        retry: RetryPolicy | None = None,
        timeout: timedelta | float | None = None,
        result_type: Any = INFER,
        cache: CachePolicy | None = None,
        limit: StepLimit[Any] | None = None,
        validate: Validate[Any] | Callable[[Any], Sequence[str]] | None = None,
    ) -> Any:
        """Run `fn(*args)` once, durably, and return its JSON-round-tripped result.

        The value returned is always what the record holds, converted to `result_type`
        (by default `fn`'s return annotation; the plain JSON value when there is none or
        msgspec cannot build it), so a replay sees exactly what the first run saw.
        Arguments are passed positionally only: no keyword of the engine's (`timeout`,
        `retry`) can collide with one of the step function's. Failures are retried by
        `retry` (the workflow's default if None); each attempt is bounded by `timeout`.
        When the step fails for good, StepFailedError is raised here, on this run and on
        every replay.
        With `cache`, any run of this workflow and step with the same key reuses a stored
        value instead of calling `fn` (recorded `cached: true`). With `limit`, each call
        first takes what it spends from the shared rate limits, waiting (parked when
        long) until it may; a RetryAfterError drains those limits.
        With `validate` (a `Validate` or a plain `check(value) -> problems`), a value with
        problems is kept in the record's `outputs` and the step runs again with them
        stated (`gates.step_feedback()`), then once on its fallback model; the best attempt
        is the result then, the record marked `needs_review` (see gates.py).
        """
        if result_type is INFER:
            result_type = return_type(fn)
        run = self._run
        seq, key = run.next_position(name)
        policy = retry or run.wf.retry
        limit_s = (
            seconds(timeout)
            if timeout is not None
            else (seconds(run.wf.step_timeout) if run.wf.step_timeout is not None else None)
        )
        spends = spends_of(limit) if limit is not None else ()
        gate = Validate(validate) if callable(validate) else validate
        checked = _checker(gate, result_type)
        record = run.state.step_at(seq)
        if record is not None:
            if record.status == "complete":
                return _typed(record.result, result_type)
            if record.status == "errored":
                raise _failed(key, record)
        run.check_control()
        # Resolved before any attempt: a run without them is a wiring error, not a failure
        # of the step to retry.
        services = run.services_for(key) if cache is not None or spends else None
        record = record or StepRecord(seq=seq, name=key, status="retrying", attempts=0)
        while True:
            now = utcnow()
            if record.retry_at is not None and record.retry_at > now:
                wait = (record.retry_at - now).total_seconds()
                if wait > INLINE_RETRY_MAX:
                    raise Suspend(record.retry_at, step_key(key))
                await asyncio.sleep(wait)
            record.attempts += 1
            record.started_at = record.started_at or utcnow()
            outcome: StepRecord | None
            cached = False
            round_no = len(record.outputs)
            feedback = None
            if gate is not None and round_no:
                feedback = Feedback(
                    round=round_no,
                    problems=tuple(record.outputs[-1].problems),
                    fallback=gate.is_fallback(round_no),
                )
            meter, leave = enter(feedback)
            spent: dict[str, Any] | None = None
            # Lines logged during the attempt name it (shared.logs); its time is measured.
            step_token = STEP.set((key, record.attempts))
            began = time.perf_counter()
            try:
                try:
                    if services is None:
                        value = await _attempt(fn, args, limit_s, key, checked)
                    else:
                        value, cached = await services.run_step(
                            self.workflow_id,
                            self.instance_id,
                            name,
                            cache,
                            spends,
                            fn,
                            lambda f: _attempt(f, args, limit_s, key, checked),
                            lambda wait: Suspend(utcnow() + timedelta(seconds=wait), step_key(key)),
                        )
                finally:
                    leave()
                    spent = meter.snapshot()
                    record.usage = add_usage(record.usage, spent)
            except asyncio.CancelledError:
                raise
            except GateFailed as exc:
                assert gate is not None
                outcome = await self._gate_failed(record, gate, exc, spent, round_no)
            except (NonRetryableError, StepFailedError) as exc:
                outcome = await self._fail(record, exc)
            except RetryAfterError as exc:
                outcome = await self._retry(record, exc, policy, exc.delay.total_seconds())
            except Exception as exc:  # noqa: BLE001 - any failure of a step is retryable
                outcome = await self._retry(record, exc, policy, None)
            else:
                if gate is not None and not cached:
                    notify_gate(self.workflow_id, key, "passed")
                final = StepRecord(
                    seq=seq,
                    name=key,
                    status="complete",
                    attempts=record.attempts - 1 if cached else record.attempts,
                    started_at=record.started_at,
                    ended_at=utcnow(),
                    result=value,
                    cached=cached,
                    outputs=record.outputs,
                    usage=record.usage,
                )
                try:
                    outcome = await run.record_step(final)
                except StepResultTooLargeError as exc:
                    await run.reload()
                    outcome = await self._fail(record, exc)
            finally:
                # Also when the attempt parks (Suspend) or the delivery is cancelled.
                STEP.reset(step_token)
            self._count_attempt(outcome, cached, record.attempts, time.perf_counter() - began)
            if outcome is None:
                continue
            if outcome.status == "complete":
                return _typed(outcome.result, result_type)
            raise _failed(key, outcome)

    def _count_attempt(
        self, outcome: StepRecord | None, cached: bool, attempts: int, took: float
    ) -> None:
        """Metrics of one attempt: by outcome (retry: to be tried again), and the step's
        final outcome when it needed retries."""
        m = self._metrics
        kind = "retry" if outcome is None else ("cached" if cached else outcome.status)
        counter = m.attempts.get(kind)
        if counter is not None:
            counter.inc()
            m.attempt_duration[kind].observe(took)
        if outcome is not None and attempts > 1:
            retried = m.retried.get(outcome.status)
            if retried is not None:
                retried.inc()

    async def _fail(self, record: StepRecord, exc: BaseException) -> StepRecord:
        """Record the step as failed for good (unless another worker already finished it)."""
        return await self._run.record_step(
            StepRecord(
                seq=record.seq,
                name=record.name,
                status="errored",
                attempts=record.attempts,
                started_at=record.started_at,
                ended_at=utcnow(),
                error=error_info(exc),
                outputs=record.outputs,
                usage=record.usage,
            )
        )

    async def _gate_failed(
        self,
        record: StepRecord,
        gate: Validate[Any],
        exc: GateFailed,
        spent: dict[str, Any] | None,
        round_no: int,
    ) -> StepRecord | None:
        """Keep the rejected attempt; go again (None), or finish with the best attempt."""
        value = exc.value
        problems = list(exc.problems)
        if len(encode(value)) > MAX_KEPT_OUTPUT_BYTES:
            value, problems = None, [*problems, "(the value was too large to keep here)"]
        record.outputs.append(
            AttemptOutput(
                round=round_no,
                value=value,
                problems=problems,
                fallback=gate.is_fallback(round_no),
                usage=spent,
                at=utcnow(),
            )
        )
        log.info(
            "step %r of %s/%s: attempt %d rejected by its gate (%s)",
            record.name,
            self.workflow_id,
            self.instance_id,
            round_no + 1,
            "; ".join(exc.problems)[:300],
        )
        notify_gate(self.workflow_id, record.name, "rejected")
        if len(record.outputs) < gate.rounds:
            record.status = "retrying"
            record.error = ErrorInfo(name="GateFailed", message="; ".join(exc.problems)[:2000])
            record.retry_at = None
            winner = await self._run.record_step(record)
            return winner if winner.status in ("complete", "errored") else None
        notify_gate(self.workflow_id, record.name, "needs_review")
        # Fewest problems wins; on a tie the later attempt (it saw the feedback).
        kept = [(i, o) for i, o in enumerate(record.outputs) if o.value is not None]
        best_value = (
            min(kept, key=lambda pair: (len(pair[1].problems), -pair[0]))[1].value
            if kept
            else exc.value
        )
        return await self._run.record_step(
            StepRecord(
                seq=record.seq,
                name=record.name,
                status="complete",
                attempts=record.attempts,
                started_at=record.started_at,
                ended_at=utcnow(),
                result=best_value,
                outputs=record.outputs,
                needs_review=True,
                usage=record.usage,
            )
        )

    def step_record(self, name: str) -> StepRecord | None:
        """The record of this run's latest call of step `name` (its usage, `needs_review`,
        the gate's rejected `outputs`), or None before it is recorded."""
        count = self._run.names[name]
        if not count:
            return None
        key = name if count == 1 else f"{name}#{count}"
        return next((r for r in self._run.state.steps if r.name == key), None)

    async def _retry(
        self, record: StepRecord, exc: BaseException, policy: RetryPolicy, requested: float | None
    ) -> StepRecord | None:
        """Record a failed attempt and when to try again; None means: try again."""
        retries_done = record.attempts - 1 - len(record.outputs)  # gate rounds do not count
        if retries_done >= policy.limit:
            return await self._fail(record, exc)
        wait = requested if requested is not None else policy.delay_before(retries_done + 1)
        record.status = "retrying"
        record.error = error_info(exc)
        record.retry_at = utcnow() + timedelta(seconds=max(0.0, wait))
        log.info(
            "step %r of %s/%s failed (attempt %d): %s; retrying in %.1fs",
            record.name,
            self.workflow_id,
            self.instance_id,
            record.attempts,
            record.error.name,
            wait,
        )
        winner = await self._run.record_step(record)
        return winner if winner.status in ("complete", "errored") else None

    async def sleep(self, name: str, duration: timedelta | float) -> None:
        """Pause the run for `duration`, durably: no worker is held while it sleeps."""
        seq, key = self._run.next_position(name)
        await self._sleep_at(seq, key, lambda: utcnow() + timedelta(seconds=seconds(duration)))

    async def sleep_until(self, name: str, when: datetime) -> None:
        """Pause the run until `when` (an aware datetime), durably."""
        if when.tzinfo is None:
            raise ValueError("sleep_until needs an aware datetime (UTC)")
        seq, key = self._run.next_position(name)
        await self._sleep_at(seq, key, lambda: when)

    async def _sleep_at(self, seq: int, key: str, wake: Callable[[], datetime]) -> None:
        run = self._run
        record = run.state.step_at(seq)
        if record is not None and record.status == "complete":
            return
        run.check_control()
        if record is None:
            now = utcnow()
            record = await run.record_step(
                StepRecord(
                    seq=seq,
                    name=key,
                    kind="sleep",
                    status="sleeping",
                    started_at=now,
                    wake_at=wake(),
                )
            )
        assert record.wake_at is not None
        if utcnow() < record.wake_at:
            raise Suspend(record.wake_at, step_key(key))
        done = StepRecord(
            seq=seq,
            name=key,
            kind="sleep",
            status="complete",
            started_at=record.started_at,
            ended_at=utcnow(),
            wake_at=record.wake_at,
        )
        await run.record_step(done)

    @overload
    async def wait_for_event(
        self, name: str, event: str, timeout: timedelta | float, payload_type: None = None
    ) -> Any: ...

    @overload
    async def wait_for_event(
        self, name: str, event: str, timeout: timedelta | float, payload_type: type[P]
    ) -> P | None: ...

    async def wait_for_event(
        self, name: str, event: str, timeout: timedelta | float, payload_type: Any = None
    ) -> Any:
        """Wait until an event of type `event` is sent to this instance; return its payload.

        Returns None when `timeout` passes first. Events sent before the run reaches this
        step are kept and consumed in order of arrival. With `payload_type` (a msgspec
        Struct, say) the payload is converted to it; a payload that does not convert
        raises msgspec.ValidationError in the workflow, on this run and on every replay.
        """
        payload = await self._wait_for_event(name, event, timeout)
        return payload if payload_type is None or payload is None else _typed(payload, payload_type)

    async def _wait_for_event(self, name: str, event: str, timeout: timedelta | float) -> Any:
        run = self._run
        seq, key = run.next_position(name)
        record = run.state.step_at(seq)
        if record is not None and record.status == "complete":
            return record.result
        run.check_control()
        if record is None:
            now = utcnow()
            record = await run.record_step(
                StepRecord(
                    seq=seq,
                    name=key,
                    kind="wait",
                    status="waiting",
                    started_at=now,
                    event=event,
                    wake_at=now + timedelta(seconds=seconds(timeout)),
                )
            )
        if record.status == "complete":
            return record.result
        assert record.wake_at is not None
        wake_at = record.wake_at

        def consume(state: InstanceState) -> StepRecord:
            existing = state.step_at(seq)
            if existing is not None and existing.status == "complete":
                return existing
            done = StepRecord(
                seq=seq,
                name=key,
                kind="wait",
                status="complete",
                started_at=record.started_at,
                ended_at=utcnow(),
                event=event,
                wake_at=wake_at,
            )
            for item in state.inbox:
                if item.type == event and item.consumed_by is None:
                    item.consumed_by = key
                    done.result = item.payload
                    state.put_step(done)
                    return done
            if utcnow() >= wake_at:
                state.put_step(done)  # timed out: the result is None
                return done
            raise Unchanged(None)

        if _has_unconsumed(run.state, event) or utcnow() >= wake_at:
            done = await run.commit(consume)
            if done is not None:
                return done.result
        raise Suspend(wake_at, step_key(key), status="waiting")


def _has_unconsumed(state: InstanceState, event: str) -> bool:
    return any(item.type == event and item.consumed_by is None for item in state.inbox)


def _checker(gate: Validate[Any] | None, result_type: Any) -> Callable[[Any], list[str]] | None:
    """The gate as a function of the step's JSON value (converted as the caller sees it)."""
    if gate is None:
        return None

    def check(value: Any) -> list[str]:
        return [str(p) for p in gate.check(_typed(value, result_type)) if str(p).strip()]

    return check


async def _attempt(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    limit_s: float | None,
    key: str,
    checked: Callable[[Any], list[str]] | None = None,
) -> Any:
    result = fn(*args)
    if inspect.isawaitable(result):
        if limit_s is None:
            result = await result
        else:
            deadline = asyncio.timeout(limit_s)
            try:
                async with deadline:
                    result = await result
            except TimeoutError as exc:
                if not deadline.expired():
                    raise  # the step's own TimeoutError, not our deadline
                raise StepTimeoutError(f"step {key!r} timed out after {limit_s:g}s") from exc
    data = encode(result)
    if len(data) > MAX_STEP_RESULT_BYTES:
        raise StepResultTooLargeError(
            f"step {key!r} returned {len(data)} bytes, over the {MAX_STEP_RESULT_BYTES}-byte limit"
        )
    value = msgspec.json.decode(data)
    if checked is not None:
        problems = checked(value)
        if problems:
            raise GateFailed(value, problems)  # before the step cache could store it
    return value


def _failed(key: str, record: StepRecord) -> StepFailedError:
    error = record.error or ErrorInfo(name="StepFailedError", message="failed")
    return StepFailedError(key, error.name, error.message)


def _typed(value: Any, result_type: Any) -> Any:
    return value if result_type is None else msgspec.convert(value, result_type)


_AWAITABLES = (collections.abc.Awaitable, collections.abc.Coroutine)


def return_type(fn: Callable[..., object]) -> Any:
    """The type a step's result is built as: `fn`'s return annotation, or None (plain JSON).

    None when `fn` has no annotation, when it cannot be resolved (a name imported only
    for type checking), when it says nothing (`Any`, `object`) or when msgspec cannot
    convert to it (an arbitrary class).
    """
    target = getattr(fn, "__func__", fn)  # a bound method: its function's annotations
    try:
        return _RETURN_TYPES[target]
    except KeyError:
        pass
    except TypeError:  # neither hashable nor weakly referable: resolve it every time
        return _resolve_return_type(fn)
    hint = _resolve_return_type(fn)
    with contextlib.suppress(TypeError):
        # Weak keys: a step function defined inside a run is forgotten with that run.
        _RETURN_TYPES[target] = hint
    return hint


_RETURN_TYPES: weakref.WeakKeyDictionary[Callable[..., object], Any] = weakref.WeakKeyDictionary()


def _resolve_return_type(fn: Callable[..., object]) -> Any:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotations mean: no type
        return None
    if hint is None:
        return None
    if not inspect.iscoroutinefunction(fn) and typing.get_origin(hint) in _AWAITABLES:
        args = typing.get_args(hint)
        hint = args[-1] if args else None  # `def f() -> Awaitable[Job]`: Job
    if hint is None or hint is Any or hint is object:
        return None
    try:
        info = msgspec.inspect.type_info(hint)
    except (TypeError, ValueError):
        return None
    return None if _has_custom(info, set()) else hint


def _has_custom(node: object, seen: set[int]) -> bool:
    """Whether a msgspec type tree has a type msgspec cannot build from JSON (any class)."""
    if isinstance(node, msgspec.inspect.CustomType):
        return True
    if isinstance(node, tuple | list):
        return any(_has_custom(item, seen) for item in node)
    if not isinstance(node, msgspec.inspect.Type | msgspec.inspect.Field) or id(node) in seen:
        return False
    seen.add(id(node))  # recursive Structs refer back to themselves
    return any(_has_custom(value, seen) for value in msgspec.structs.astuple(node))


def ceil_second(when: datetime) -> datetime:
    """Round up to a whole second (broker timers have one-second resolution)."""
    whole = when.replace(microsecond=0)
    return whole if whole == when else whole + timedelta(seconds=1)
