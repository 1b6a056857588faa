"""Workflow definitions: the `@workflow` decorator and the registry."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from shared.bus import EVENT_NAME
from shared.errors import UnknownWorkflowError
from shared.workflow.progress import Progress
from shared.workflow.retry import DEFAULT_RETRY, RetryPolicy

if TYPE_CHECKING:
    from shared.workflow.context import Context

WORKFLOW_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


class _Keep:
    """`with_options` default: leave the setting as declared (None is a real value)."""


KEEP = _Keep()

RunFn = Callable[["Context[Any]", Any], Awaitable[Any]]


@dataclass(frozen=True)
class Workflow:
    """A registered workflow: its id, the events that start it and how it runs."""

    id: str
    run: RunFn
    on: tuple[str, ...] = ()
    concurrency: int | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    step_timeout: timedelta | None = None
    params_type: Any = None
    description: str = ""
    # What the end user sees of a run (shared/workflow/progress.py); None: no progress.
    progress: Progress | None = None

    def __post_init__(self) -> None:
        if not WORKFLOW_ID.match(self.id):
            raise ValueError(f"invalid workflow id {self.id!r}: use [a-z0-9_-], at most 64")
        for name in self.on:
            if not EVENT_NAME.match(name):
                raise ValueError(f"invalid trigger event name {name!r} for workflow {self.id!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")

    def with_options(
        self,
        *,
        concurrency: int | _Keep | None = KEEP,
        retry: RetryPolicy | _Keep = KEEP,
        step_timeout: timedelta | _Keep | None = KEEP,
    ) -> Workflow:
        """This workflow with some settings replaced: how a service applies its own
        configuration (`wf.with_options(concurrency=settings.resume_concurrency)`) to a
        workflow declared with `@workflow`, without a factory. Validated like the original.
        """
        changes: dict[str, Any] = {}
        if not isinstance(concurrency, _Keep):
            changes["concurrency"] = concurrency
        if not isinstance(retry, _Keep):
            changes["retry"] = retry
        if not isinstance(step_timeout, _Keep):
            changes["step_timeout"] = step_timeout
        return dataclasses.replace(self, **changes)


def workflow(
    id: str,
    *,
    on: str | Iterable[str] = (),
    concurrency: int | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    step_timeout: timedelta | None = None,
    params: Any = None,
    progress: Progress | None = None,
) -> Callable[[RunFn], Workflow]:
    """Declare a workflow: `@workflow("resume-generation", on="resume/generation.requested")`.

    The decorated `async def run(ctx, params)` becomes a `Workflow`. `params` (a msgspec
    Struct type) converts the instance's params before the run sees them; a conversion
    failure fails the instance at once with a clear error. `progress` declares the label
    of each step the end user sees and the public summary of a finished run.
    """
    events = (on,) if isinstance(on, str) else tuple(on)

    def decorate(fn: RunFn) -> Workflow:
        doc = (fn.__doc__ or "").strip()
        return Workflow(
            id=id,
            run=fn,
            on=events,
            concurrency=concurrency,
            retry=retry,
            step_timeout=step_timeout,
            params_type=params,
            description=doc.splitlines()[0] if doc else "",
            progress=progress,
        )

    return decorate


@dataclass
class Registry:
    """Workflows by id, and which workflows each event starts."""

    workflows: dict[str, Workflow] = field(default_factory=dict)

    def __init__(self, workflows: Iterable[Workflow] = ()) -> None:
        self.workflows = {}
        for wf in workflows:
            self.add(wf)

    def add(self, wf: Workflow) -> Workflow:
        if wf.id in self.workflows:
            raise ValueError(f"workflow {wf.id!r} is registered twice")
        self.workflows[wf.id] = wf
        return wf

    def get(self, workflow_id: str) -> Workflow:
        try:
            return self.workflows[workflow_id]
        except KeyError:
            raise UnknownWorkflowError(f"unknown workflow {workflow_id!r}") from None

    def __contains__(self, workflow_id: object) -> bool:
        return workflow_id in self.workflows

    def __iter__(self) -> Iterator[Workflow]:
        return iter(self.workflows.values())

    def for_event(self, name: str) -> list[Workflow]:
        return [wf for wf in self.workflows.values() if name in wf.on]
