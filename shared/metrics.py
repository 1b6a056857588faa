"""Prometheus metrics of one process: one registry, bound children, `/metrics` on METRICS_PORT.

Nothing happens at import. `metrics()` builds the process's registry on first use (an
engine embedded in a test or a script counts too, it just serves nothing); `serve()`
starts prometheus-client's HTTP listener when a service sets METRICS_PORT.

Hot-path cost: the engine holds a `WorkflowMetrics` per workflow whose label children are
bound once, so a hook is one dict lookup and one `inc()` / `observe()` — no label tuple,
no lock on the family. Label values are bounded: workflow ids, step outcomes, limit names
and cron jobs come from code and configuration; dead-letter reasons are folded into a fixed
set (`reason_label`); HTTP routes are Litestar path templates, never raw paths.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Seconds: a step is a call to an API or a database (tens of ms … minutes with an LLM).
STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# A run spans its steps, retries and sleeps: seconds to days.
RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)

RUN_STATUSES = ("complete", "errored", "terminated")
STEP_OUTCOMES = ("complete", "retry", "errored", "cached")
# Anthropic's usage fields (`<kind>_tokens`) and the label each is exported under.
LLM_TOKEN_KINDS = {
    "input": "input",
    "output": "output",
    "cache_read_input": "cache_read",
    "cache_creation_input": "cache_write",
}
# Dead-letter reasons as the engine writes them, by prefix: the rest of a reason can name
# a subject (unbounded), so only the prefix becomes a label.
DEAD_LETTER_REASONS = (
    "max deliveries exceeded",
    "undecodable event",
    "undecodable run message",
    "unknown workflow",
    "invalid instance id",
)


def reason_label(reason: str) -> str:
    """The bounded label of a dead letter's reason (`other` for one we do not know)."""
    for known in DEAD_LETTER_REASONS:
        if reason.startswith(known):
            return known.replace(" ", "_")
    return "other"


class WorkflowMetrics:
    """One workflow's label children, bound once (see the module docstring)."""

    __slots__ = (
        "attempt_duration",
        "attempts",
        "cached",
        "finished",
        "queue_wait",
        "retried",
        "run_duration",
        "started",
    )

    def __init__(self, m: Metrics, workflow: str) -> None:
        self.started = m.runs_started.labels(workflow)
        self.finished = {s: m.runs_finished.labels(workflow, s) for s in RUN_STATUSES}
        self.run_duration = {s: m.run_duration.labels(workflow, s) for s in RUN_STATUSES}
        self.queue_wait = m.queue_wait.labels(workflow)
        self.attempts = {o: m.step_attempts.labels(workflow, o) for o in STEP_OUTCOMES}
        self.attempt_duration = {o: m.step_duration.labels(workflow, o) for o in STEP_OUTCOMES}
        self.retried = {s: m.step_retries.labels(workflow, s) for s in ("complete", "errored")}
        self.cached = m.cached_steps.labels(workflow)


class Metrics:
    """Every metric this system exports, in one registry (one per process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        ns = "howlerhire"
        self.runs_started = Counter(
            "runs_started", "Runs started (a restart's new generation counts again)",
            ["workflow"], namespace=ns, registry=r,
        )  # fmt: skip
        self.runs_finished = Counter(
            "runs_finished", "Runs that ended, by final status", ["workflow", "status"],
            namespace=ns, registry=r,
        )  # fmt: skip
        self.run_duration = Histogram(
            "run_duration_seconds", "Start to end of a run (steps, retries and sleeps)",
            ["workflow", "status"], namespace=ns, registry=r, buckets=RUN_BUCKETS,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "run_queue_seconds", "From a run being queued to its first step running",
            ["workflow"], namespace=ns, registry=r, buckets=STEP_BUCKETS,
        )  # fmt: skip
        self.step_attempts = Counter(
            "step_attempts", "Step attempts by outcome (retry: failed, to be tried again)",
            ["workflow", "outcome"], namespace=ns, registry=r,
        )  # fmt: skip
        self.step_retries = Counter(
            "step_retries", "Steps retried, by how the step finally ended",
            ["workflow", "outcome"], namespace=ns, registry=r,
        )  # fmt: skip
        self.step_duration = Histogram(
            "step_attempt_duration_seconds", "One step attempt, by outcome",
            ["workflow", "outcome"], namespace=ns, registry=r, buckets=STEP_BUCKETS,
        )  # fmt: skip
        self.cached_steps = Counter(
            "steps_cached", "Steps answered from the step cache (fn not called)",
            ["workflow"], namespace=ns, registry=r,
        )  # fmt: skip
        self.ratelimit_waits = Counter(
            "ratelimit_waits", "Waits for a shared rate limit (inline: slept; parked: suspended)",
            ["limit", "mode"], namespace=ns, registry=r,
        )  # fmt: skip
        self.ratelimit_wait_seconds = Counter(
            "ratelimit_wait_seconds", "Seconds waited for shared rate limits",
            ["limit", "mode"], namespace=ns, registry=r,
        )  # fmt: skip
        self.dead_letters = Counter(
            "dead_letters", "Messages dead-lettered, by workflow and reason",
            ["workflow", "reason"], namespace=ns, registry=r,
        )  # fmt: skip
        self.consumer_pending = Gauge(
            "consumer_pending", "Messages of the workflow's durable consumer not yet delivered",
            ["workflow"], namespace=ns, registry=r,
        )  # fmt: skip
        self.consumer_ack_pending = Gauge(
            "consumer_ack_pending", "Messages delivered and not yet acknowledged",
            ["workflow"], namespace=ns, registry=r,
        )  # fmt: skip
        self.nats_connected = Gauge(
            "nats_connected", "1 while this process holds a NATS connection, else 0",
            namespace=ns, registry=r,
        )  # fmt: skip
        self.http_requests = Counter(
            "http_requests", "Gateway requests by method, route template and status",
            ["method", "route", "status"], namespace=ns, registry=r,
        )  # fmt: skip
        self.http_duration = Histogram(
            "http_request_duration_seconds", "Gateway request handling time",
            ["method", "route"], namespace=ns, registry=r, buckets=HTTP_BUCKETS,
        )  # fmt: skip
        self.cron_fired = Counter(
            "cron_slots_fired", "Cron slots published by this scheduler (catch-up included)",
            ["job"], namespace=ns, registry=r,
        )  # fmt: skip
        self.cron_missed = Counter(
            "cron_slots_missed", "Cron slots skipped: older than SCHEDULER_CATCHUP",
            ["job"], namespace=ns, registry=r,
        )  # fmt: skip
        # LLM calls (issue 20): fed by shared.ai.budget's usage listener and the quality
        # gates' verdicts. By workflow, never by user (per-user totals live in KV).
        self.llm_tokens = Counter(
            "llm_tokens", "Model tokens by kind (input, output, cache_read, cache_write)",
            ["workflow", "kind"], namespace=ns, registry=r,
        )  # fmt: skip
        self.llm_cost = Counter(
            "llm_cost_usd", "Model spend in US dollars (the configured price table)",
            ["workflow"], namespace=ns, registry=r,
        )  # fmt: skip
        self.gate_verdicts = Counter(
            "llm_gate_verdicts", "Quality-gate verdicts (passed, rejected, needs_review)",
            ["workflow", "outcome"], namespace=ns, registry=r,
        )  # fmt: skip
        self.nats_connected.set(0)
        self._workflows: dict[str, WorkflowMetrics] = {}
        self._lock = threading.Lock()

    def workflow(self, workflow: str) -> WorkflowMetrics:
        """The bound children of `workflow` (created, with every series at 0, once)."""
        found = self._workflows.get(workflow)
        if found is None:
            with self._lock:
                found = self._workflows.get(workflow)
                if found is None:
                    found = self._workflows[workflow] = WorkflowMetrics(self, workflow)
        return found

    def declare(self, workflows: Iterable[str]) -> None:
        """Export every series of these workflows at 0 from the start, so `increase()`
        and the alerts see a counter's first change (a series born at 1 shows none)."""
        for wf in workflows:
            self.workflow(wf)
            self.consumer_pending.labels(wf)
            self.consumer_ack_pending.labels(wf)

    def llm_usage(self, user_id: str, workflow: str, day: str, usage: Any) -> None:
        """A settled LLM step's usage (shared.ai.budget's listener signature)."""
        for kind in LLM_TOKEN_KINDS:
            count = usage.get(f"{kind}_tokens") if hasattr(usage, "get") else None
            if isinstance(count, int | float) and count > 0:
                self.llm_tokens.labels(workflow, LLM_TOKEN_KINDS[kind]).inc(count)
        cost = usage.get("cost_usd") if hasattr(usage, "get") else None
        if isinstance(cost, int | float) and cost > 0:
            self.llm_cost.labels(workflow).inc(cost)

    def gate_verdict(self, workflow: str, step: str, outcome: str) -> None:
        """A quality gate's verdict (shared.workflow.gates' listener signature)."""
        self.gate_verdicts.labels(workflow, outcome).inc()

    def watch_connection(self, is_connected: Callable[[], bool]) -> None:
        """Report the NATS connection state at each scrape (no task, no callback)."""
        self.nats_connected.set_function(lambda: 1.0 if is_connected() else 0.0)


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> Metrics:
    """This process's metrics (built on first use)."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


def serve(port: int, host: str = "127.0.0.1") -> Any | None:
    """Serve `/metrics` of this process on `host:port` (a daemon thread); None when
    `port` is 0 (metrics off) or the port is taken (logged: the service still runs)."""
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=metrics().registry)
    except OSError as exc:
        log.warning("metrics: cannot listen on %s:%d (%s); /metrics not served", host, port, exc)
        return None
    log.info("metrics: serving /metrics on %s:%d", host, port)
    return server


__all__ = ["Metrics", "WorkflowMetrics", "metrics", "reason_label", "serve"]
