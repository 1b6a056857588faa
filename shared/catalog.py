"""Which workflows exist, which service runs each, and which events start them (SPEC §2).

The gateway validates and routes with this table; services register workflows whose ids,
triggers and params Struct (`shared.events.PARAMS`) must match it (a test checks they do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.events import PARAMS, Params


@dataclass(frozen=True)
class WorkflowSpec:
    id: str
    service: str
    events: tuple[str, ...]
    concurrency: int | None = None
    # What the params decode into; None: any JSON object (the demo). From shared.events.
    params: type[Params] | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", PARAMS.get(self.id))


CATALOG: tuple[WorkflowSpec, ...] = (
    WorkflowSpec("resume-generation", "resume", ("resume/generation.requested",), 5),
    WorkflowSpec("resume-parsing", "parsing", ("resume/parsing.requested",)),
    WorkflowSpec("profile-sync", "parsing", ("profile/sync.requested",)),
    WorkflowSpec(
        "job-discovery", "discovery", ("job/discovery.requested", "jobs/discovery.requested")
    ),
    WorkflowSpec("daily-discovery", "discovery", ("cron/daily-discovery",), 1),
    WorkflowSpec("weekly-summary", "notify", ("cron/weekly-summary", "email/weekly-summary"), 1),
    # One-click unsubscribe links (the gateway's /unsubscribe verifies, notify writes).
    WorkflowSpec("email-unsubscribe", "notify", ("email/unsubscribe.requested",)),
    # The laptop demo (services/demo): shows the engine without any third-party account.
    WorkflowSpec("demo-greeting", "demo", ("demo/greeting.requested",)),
)


def routes() -> dict[str, tuple[str, ...]]:
    """Workflow id → the event names that start it."""
    return {spec.id: spec.events for spec in CATALOG}


def consumer_specs() -> list[tuple[str, tuple[str, ...], int | None]]:
    """(id, events, concurrency) of every workflow, for creating their consumers up front."""
    return [(spec.id, spec.events, spec.concurrency) for spec in CATALOG]
