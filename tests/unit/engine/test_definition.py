"""Workflow definitions, retry policies and settings: no network."""

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from shared.config import EngineSettings, load_settings
from shared.errors import ConfigError, UnknownWorkflowError
from shared.workflow import Registry, RetryPolicy, workflow
from shared.workflow.context import ceil_second, step_key
from shared.workflow.model import InstanceState, StepRecord, decode_state, encode


def test_backoff_kinds_and_cap():
    """Each backoff kind gives its documented waits, capped by max_delay."""
    assert [RetryPolicy(delay=2, backoff="constant").delay_before(n) for n in (1, 2, 3)] == [
        2,
        2,
        2,
    ]
    assert [RetryPolicy(delay=2, backoff="linear").delay_before(n) for n in (1, 2, 3)] == [2, 4, 6]
    exp = RetryPolicy(delay=timedelta(seconds=2), backoff="exponential", max_delay=10)
    assert [exp.delay_before(n) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]


def test_bad_policies_and_ids_are_refused():
    """Negative limits, unknown backoffs, bad ids and bad event names fail at definition."""
    with pytest.raises(ValueError, match="limit"):
        RetryPolicy(limit=-1)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(backoff="fibonacci")  # type: ignore[arg-type]

    async def run(ctx, params):
        return None

    with pytest.raises(ValueError, match="invalid workflow id"):
        workflow("Bad Id")(run)
    with pytest.raises(ValueError, match="invalid trigger event name"):
        workflow("ok", on="has space/x")(run)


def test_registry_routes_events_and_rejects_duplicates():
    """The registry finds workflows by id and by trigger event; ids are unique."""

    async def run(ctx, params):
        return None

    a = workflow("a", on=["x/one.requested", "x/alias.requested"])(run)
    b = workflow("b", on="x/one.requested")(run)
    registry = Registry([a, b])
    assert [wf.id for wf in registry.for_event("x/one.requested")] == ["a", "b"]
    assert [wf.id for wf in registry.for_event("x/alias.requested")] == ["a"]
    with pytest.raises(UnknownWorkflowError):
        registry.get("c")
    with pytest.raises(ValueError, match="twice"):
        registry.add(workflow("a")(run))


def test_settings_from_environment_name_the_bad_variable():
    """Settings come from upper-case variables; a bad or missing one is named."""
    settings = load_settings(EngineSettings, {"NATS_URL": "nats://n:4222", "ACK_WAIT": "5"})
    assert settings.nats_url == "nats://n:4222" and settings.ack_wait == 5.0
    with pytest.raises(ConfigError, match="WORKER_CONCURRENCY"):
        load_settings(EngineSettings, {"WORKER_CONCURRENCY": "many"})
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY is not set"):
        load_settings(EngineSettings, {}, required=("anthropic_api_key",))


def test_instance_record_round_trips():
    """An instance record encodes and decodes losslessly."""
    now = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
    state = InstanceState(
        workflow="w",
        instance_id="i",
        status="running",
        params={"a": 1},
        created_at=now,
        steps=[StepRecord(seq=0, name="s", status="complete", attempts=1, result={"x": [1, 2]})],
    )
    again = decode_state(encode(state))
    assert again == state
    assert msgspec.json.decode(encode(state))["steps"][0]["result"] == {"x": [1, 2]}


def test_timer_rounding_never_shortens():
    """Timers round up to whole seconds, never down; step keys are subject-safe."""
    t = datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    assert ceil_second(t) == datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
    whole = datetime(2026, 1, 1, tzinfo=UTC)
    assert ceil_second(whole) == whole
    assert step_key("send email: a.b>c").isalnum()


def test_with_options_replaces_only_what_it_names():
    """A service applies its settings to a declared workflow; the original is unchanged."""

    @workflow("tunable", on="tunable/requested", concurrency=5, step_timeout=timedelta(1))
    async def tunable(ctx, params):
        """Tune me."""

    tighter = tunable.with_options(concurrency=2)
    assert (tighter.concurrency, tunable.concurrency) == (2, 5)
    assert (tighter.id, tighter.on, tighter.run) == (tunable.id, tunable.on, tunable.run)
    assert tighter.step_timeout == timedelta(1) and tighter.description == "Tune me."
    assert tunable.with_options(concurrency=None).concurrency is None  # None: no limit
    patient = tunable.with_options(retry=RetryPolicy(limit=9), step_timeout=None)
    assert (patient.retry.limit, patient.step_timeout) == (9, None)
    with pytest.raises(ValueError, match="concurrency"):
        tunable.with_options(concurrency=0)


def test_names_with_a_trailing_newline_are_refused():
    """Event names and instance ids match to the very end: `$` would let a newline through."""
    from shared.bus import EVENT_NAME, INSTANCE_ID, event_token

    assert INSTANCE_ID.match("run-1")
    assert not INSTANCE_ID.match("run-1\n")
    assert not EVENT_NAME.match("resume/generation.requested\n")
    with pytest.raises(ValueError):
        event_token("resume/generation.requested\n")
