"""An async Python client for the gateway, mirroring the web app's TypeScript client.

```python
async with WorkflowsClient("http://127.0.0.1:8787", token) as client:
    started = await client.generate_resume(user_id, job_id, application_id)
    status = await client.get_status("resume-generation", started.instance_id)
    await client.send(Event(name="jobs/discovery.requested", data={"userId": user_id}))
```

Errors (all `WorkflowsClientError`, an `AppError`):

```
WorkflowsClientError
├─ AuthenticationError   401: missing or wrong token
├─ RequestRejectedError  400/413/422: the gateway refused the request (`.field` names why)
├─ NotFoundError         404: unknown instance
├─ ConflictError         409: the instance's status does not allow it
└─ UnavailableError      503, 5xx or no connection: safe to retry with the same ids
```

`trigger` always sends an instance id (a new one when none is given) and `send` retries
only events that carry an `id`, so every retry the client makes is idempotent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from shared.errors import AppError
from shared.events import (
    FileType,
    JobDiscoveryParams,
    ProfileSyncParams,
    ResumeGenerationParams,
    ResumeParsingParams,
    SearchCriteria,
)
from shared.wire import (
    Body,
    CacheInvalidated,
    ErrorDetail,
    EventsResponse,
    RateLimitInfo,
    RateLimitList,
    StartedRun,
    Status,
    TriggerResponse,
    WorkflowStatus,
)

T = TypeVar("T")


class Event(Body, frozen=True, kw_only=True, omit_defaults=True):
    """An Inngest-style event. Give it an `id` to make sending it idempotent."""

    name: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None
    ts: int | None = None
    v: str | None = None


class ProgressToken(Body, frozen=True, kw_only=True):
    """A token that lets a browser (or `follow_progress`) watch one instance of one user."""

    token: str
    expires_at: datetime
    url: str  # the path for an EventSource, relative to the gateway


class ProgressUpdate(Body, frozen=True, kw_only=True):
    """What an end user sees of a run; `outcome` is set on the final update only."""

    status: str
    step: str | None
    label: str
    done: int
    total: int
    pct: int
    outcome: Literal["complete", "failed", "terminated"] | None = None
    summary: dict[str, float | int | bool] | None = None
    message: str | None = None
    event_id: int | None = None  # the SSE id (a stream sequence; None on JSON answers)


#: What `send` answers: the events' ids and the instances they started.
SendResult = EventsResponse


class InstanceSummary(Body, frozen=True, kw_only=True, omit_defaults=True):
    """An instance as lists show it (detail answers decode to it too)."""

    workflow: str
    instance_id: str
    status: Status
    created_at: datetime
    generation: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    error: ErrorDetail | None = None


class InstancePage(Body, frozen=True, kw_only=True):
    instances: list[InstanceSummary]
    next_cursor: str | None = None


class StepDetail(Body, frozen=True, kw_only=True):
    """One recorded step of an instance: `kind` do, sleep or wait; `status` complete,
    errored, retrying (`retry_at` the next try), sleeping or waiting (`wake_at`)."""

    seq: int
    name: str
    kind: str
    status: str
    attempts: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = None
    error: ErrorDetail | None = None
    retry_at: datetime | None = None
    wake_at: datetime | None = None
    event: str | None = None
    output: Any = None
    cached: bool = False


class InboxItem(Body, frozen=True, kw_only=True, omit_defaults=True):
    """An event sent to an instance; `consumed_by` names the wait that took it."""

    id: str
    type: str
    received_at: datetime
    consumed_by: str | None = None


class TriggerInfo(Body, frozen=True, kw_only=True, omit_defaults=True):
    event: str | None = None
    event_id: str | None = None


class InstanceDetail(Body, frozen=True, kw_only=True):
    """One instance whole: params, output, error, its steps and its event inbox (encoded
    with every field, so `howlerhire -o json` always has `generation`, `cached`, …)."""

    workflow: str
    instance_id: str
    status: Status
    created_at: datetime
    generation: int = 0
    params: Any = None
    output: Any = None
    error: ErrorDetail | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime | None = None
    trigger: TriggerInfo | None = None
    steps: list[StepDetail] = msgspec.field(default_factory=list)
    events: list[InboxItem] = msgspec.field(default_factory=list)


class EventAccepted(Body, frozen=True, kw_only=True):
    """An event stored in an instance's inbox (`POST …/events/{type}`)."""

    workflow: str
    instance_id: str
    type: str
    event_id: str


class DeadLetter(Body, frozen=True, kw_only=True, omit_defaults=True):
    """A message that could not be processed, and why (`seq` identifies it)."""

    seq: int
    workflow: str
    reason: str
    subject: str
    recorded_at: datetime
    instance_id: str | None = None
    stream_seq: int | None = None
    deliveries: int | None = None
    error: ErrorDetail | None = None
    payload_preview: str = ""


class DeadLetterList(Body, frozen=True, kw_only=True):
    dead_letters: list[DeadLetter]
    next_cursor: str | None = None


class BulkJob(Body, frozen=True, kw_only=True):
    """A bulk action's progress: `phase` preview (dry run), selecting, running or done."""

    id: str
    action: str
    phase: str
    total: int = 0
    position: int = 0
    acted: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = msgspec.field(default_factory=list)
    finished_at: datetime | None = None


class _Redriven(msgspec.Struct):
    redriven: int


class _Purged(msgspec.Struct):
    purged: int


class WorkflowsClientError(AppError):
    """The gateway refused or failed a request. `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, status: int = 0, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class AuthenticationError(WorkflowsClientError):
    """401: the token is missing or wrong."""


class RequestRejectedError(WorkflowsClientError):
    """400/413/422: the request is malformed, too large or names an unknown workflow."""


class NotFoundError(WorkflowsClientError):
    """404: no such instance (or route)."""


class ConflictError(WorkflowsClientError):
    """409: the instance's current status does not allow the operation."""


class UnavailableError(WorkflowsClientError):
    """The gateway or NATS is unavailable (503, 5xx, no connection); retrying is safe."""


class _ErrorBody(msgspec.Struct):
    error: str = "unknown error"
    field: str | None = None


_BY_STATUS: dict[int, type[WorkflowsClientError]] = {
    400: RequestRejectedError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: RequestRejectedError,
    422: RequestRejectedError,
}


def _instance_path(workflow: str, instance_id: str) -> str:
    return f"/workflows/{quote(workflow, safe='')}/instances/{quote(instance_id, safe='')}"


class WorkflowsClient:
    """The gateway's API for Python services and scripts (an `httpx.AsyncClient` inside)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        retries: int = 2,
        retry_wait: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        self._retries = retries
        self._retry_wait = retry_wait

    async def __aenter__(self) -> WorkflowsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the original client's API -------------------------------------------------------

    async def send(self, events: Event | Sequence[Event]) -> SendResult:
        """Send one event or several (Inngest's `send`); retried only if all have an id."""
        batch = [events] if isinstance(events, Event) else list(events)
        safe = all(event.id for event in batch)
        return await self._post("/events", batch, SendResult, retry=safe)

    async def trigger(
        self,
        workflow: str,
        params: Any,
        instance_id: str | None = None,
    ) -> TriggerResponse:
        """Start `workflow` with `params` (a `shared.events` Struct, or a JSON object); the
        same `instance_id` twice is one instance."""
        body = {
            "workflow": workflow,
            "params": params,
            "instanceId": instance_id or uuid.uuid4().hex,
        }
        return await self._post("/trigger", body, TriggerResponse, retry=True)

    async def get_status(self, workflow: str, instance_id: str) -> WorkflowStatus:
        body = {"workflow": workflow, "instanceId": instance_id}
        return await self._post("/status", body, WorkflowStatus, retry=True)

    async def generate_resume(
        self, user_id: str, job_id: str, application_id: str, skip_usage_check: bool = False
    ) -> TriggerResponse:
        params = ResumeGenerationParams(
            user_id=user_id,
            job_id=job_id,
            application_id=application_id,
            skip_usage_check=skip_usage_check,
        )
        return await self.trigger("resume-generation", params)

    async def parse_resume(
        self, user_id: str, resume_id: str, file_url: str, file_type: FileType
    ) -> TriggerResponse:
        params = ResumeParsingParams(
            user_id=user_id, resume_id=resume_id, file_url=file_url, file_type=file_type
        )
        return await self.trigger("resume-parsing", params)

    async def discover_jobs(
        self,
        user_id: str,
        search_criteria: SearchCriteria | None = None,
    ) -> TriggerResponse:
        params = JobDiscoveryParams(user_id=user_id, search_criteria=search_criteria)
        return await self.trigger("job-discovery", params)

    async def sync_profile(self, user_id: str, github_handle: str) -> TriggerResponse:
        params = ProfileSyncParams(user_id=user_id, github_handle=github_handle)
        return await self.trigger("profile-sync", params)

    # -- operations ----------------------------------------------------------------------

    async def schedules(self) -> list[dict[str, Any]]:
        """The cron jobs (`GET /schedules`): expression, timezone, lastSlot, nextFire, skipped."""
        return await self._call("GET", "/schedules", None, list[dict[str, Any]])

    async def list_instances(
        self,
        workflow: str | None = None,
        status: Status | None = None,
        user_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> InstancePage:
        """A page of instances (by start or finish), filtered; `next_cursor` pages on."""
        query = {"workflow": workflow, "status": status, "userId": user_id, "cursor": cursor}
        params = {k: v for k, v in query.items() if v is not None} | {"limit": str(limit)}
        return await self._call("GET", "/instances", None, InstancePage, params=params)

    async def instance(self, workflow: str, instance_id: str) -> InstanceDetail:
        """One instance with its params, output, error, steps and event inbox."""
        return await self._call("GET", _instance_path(workflow, instance_id), None, InstanceDetail)

    async def change_status(
        self,
        workflow: str,
        instance_id: str,
        action: Literal["pause", "resume", "terminate"],
    ) -> InstanceDetail:
        """Pause, resume or terminate the instance (409 when its status does not allow it)."""
        path = _instance_path(workflow, instance_id) + "/status"
        return await self._call("PATCH", path, {"status": action}, InstanceDetail)

    async def send_instance_event(
        self,
        workflow: str,
        instance_id: str,
        event_type: str,
        payload: Any = None,
        idempotency_key: str | None = None,
    ) -> EventAccepted:
        """Put an event in the instance's inbox, for its `wait_for_event(…, event_type)`;
        retried only with an `idempotency_key` (then a repeat is stored once)."""
        path = f"{_instance_path(workflow, instance_id)}/events/{quote(event_type, safe='')}"
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return await self._call(
            "POST", path, payload, EventAccepted, retry=idempotency_key is not None, headers=headers
        )

    async def restart(
        self, workflow: str, instance_id: str, from_step: str | None = None
    ) -> InstanceSummary:
        """Run the instance again: from the start, or from `from_step` on (the results of
        the steps before it are kept). Not retried: each call is a new generation."""
        body: dict[str, Any] = {"status": "restart"}
        if from_step is not None:
            body["from"] = {"name": from_step}
        path = f"/workflows/{workflow}/instances/{instance_id}/status"
        return await self._call("PATCH", path, body, InstanceSummary, retry=False)

    async def dead_letters(
        self,
        workflow: str | None = None,
        reason: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeadLetterList:
        query = {"workflow": workflow, "reason": reason, "cursor": cursor}
        params = {k: v for k, v in query.items() if v is not None} | {"limit": str(limit)}
        return await self._call("GET", "/dlq", None, DeadLetterList, params=params)

    async def dead_letter(self, seq: int) -> DeadLetter:
        return await self._call("GET", f"/dlq/{seq}", None, DeadLetter)

    async def redrive(self, seq: int) -> DeadLetter:
        """Re-drive one dead letter (once however often asked; gone after: NotFoundError)."""
        return await self._call("POST", f"/dlq/{seq}/redrive", None, DeadLetter)

    async def redrive_all(self, workflow: str | None = None, reason: str | None = None) -> int:
        body = {k: v for k, v in {"workflow": workflow, "reason": reason}.items() if v}
        return (await self._call("POST", "/dlq/redrive", body, _Redriven)).redriven

    async def purge_dead_letters(
        self, workflow: str | None = None, reason: str | None = None, seq: int | None = None
    ) -> int:
        query = {"workflow": workflow, "reason": reason, "seq": seq}
        body = {k: v for k, v in query.items() if v is not None}
        return (await self._call("POST", "/dlq/purge", body, _Purged)).purged

    async def bulk(
        self,
        action: Literal["cancel", "terminate", "restart", "replay"],
        *,
        workflow: str | None = None,
        status: Status | None = None,
        user_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        from_step: str | None = None,
        rate: float = 50.0,
        dry_run: bool = False,
        key: str | None = None,
    ) -> BulkJob:
        """Start (or resume, or read) a bulk action on every matching instance; with
        `dry_run` only the count. Follow a started job with `bulk_job(job.id)`."""
        body: dict[str, Any] = {
            "workflow": workflow,
            "status": status,
            "userId": user_id,
            "createdAfter": created_after,
            "createdBefore": created_before,
            "from": None if from_step is None else {"name": from_step},
            "rate": rate,
            "dryRun": dry_run,
            "key": key,
        }
        body = {k: v for k, v in body.items() if v is not None}
        return await self._call("POST", f"/bulk/{action}", body, BulkJob)

    async def bulk_job(self, job_id: str) -> BulkJob:
        return await self._call("GET", f"/bulk/{job_id}", None, BulkJob)

    # -- cross-run state ----------------------------------------------------------------

    async def invalidate_cache(
        self, workflow: str, step: str | None = None, prefix: str | None = None
    ) -> CacheInvalidated:
        """Remove `workflow`'s cached step results (one step's; keys starting with `prefix`)."""
        path = f"/cache/{quote(workflow, safe='')}"
        if step is not None:
            path += f"/{quote(step, safe='')}"
        params = {"prefix": prefix} if prefix else None
        return await self._call("DELETE", path, None, CacheInvalidated, retry=True, params=params)

    async def rate_limits(self) -> RateLimitList:
        """Every shared rate limit's tokens, rate and drain now."""
        return await self._call("GET", "/rate-limits", None, RateLimitList, retry=True)

    # -- end-user progress -----------------------------------------------------------------

    async def progress_token(self, workflow: str, instance_id: str, user_id: str) -> ProgressToken:
        """A progress token for one instance of one user (what the web app's server hands
        its browser); the instance must belong to the user."""
        body = {"workflow": workflow, "instanceId": instance_id, "userId": user_id}
        return await self._post("/progress-tokens", body, ProgressToken, retry=True)

    async def progress(self, workflow: str, instance_id: str, token: str) -> ProgressUpdate:
        """The instance's progress now (the JSON form of `GET /progress/...`)."""
        response = await self._progress_request(workflow, instance_id, token, {})
        if not response.is_success:
            raise _error(response)
        return msgspec.json.decode(response.content, type=ProgressUpdate)

    async def follow_progress(
        self, workflow: str, instance_id: str, token: str, *, last_event_id: int | None = None
    ) -> AsyncIterator[ProgressUpdate]:
        """Every progress update as the gateway pushes it, ending with the final one. A
        dropped connection is resumed (`Last-Event-ID`) up to `retries` times in a row."""
        after = last_event_id
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if after is not None:
                headers["Last-Event-ID"] = str(after)
            try:
                async with self._http.stream(
                    "GET",
                    f"/progress/{quote(workflow, safe='')}/{quote(instance_id, safe='')}",
                    headers={**headers, "Authorization": f"Bearer {token}"},
                    timeout=httpx.Timeout(self._http.timeout.connect, read=None),
                ) as response:
                    if not response.is_success:
                        await response.aread()
                        raise _error(response)
                    async for update in _sse_updates(response):
                        failures = 0
                        after = update.event_id if update.event_id is not None else after
                        yield update
                        if update.outcome is not None:
                            return
                # Closed without a final update: resume.
            except (httpx.TransportError, httpx.StreamError) as exc:
                failures += 1
                if failures > self._retries:
                    raise UnavailableError(f"progress stream lost: {type(exc).__name__}") from None
                await asyncio.sleep(self._retry_wait * 2 ** (failures - 1))

    async def _progress_request(
        self, workflow: str, instance_id: str, token: str, headers: dict[str, str]
    ) -> httpx.Response:
        path = f"/progress/{quote(workflow, safe='')}/{quote(instance_id, safe='')}"
        try:
            return await self._http.get(
                path, headers={**headers, "Authorization": f"Bearer {token}"}
            )
        except httpx.TransportError as exc:
            raise UnavailableError(f"gateway unreachable: {type(exc).__name__}") from None

    # -- plumbing ------------------------------------------------------------------------

    async def _post(self, path: str, body: Any, type_: type[T], *, retry: bool) -> T:
        return await self._call("POST", path, body, type_, retry=retry)

    async def _call(
        self,
        method: str,
        path: str,
        body: Any,
        type_: type[T],
        *,
        retry: bool = True,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> T:
        content = None if body is None else msgspec.json.encode(body)
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    method, path, content=content, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                error: WorkflowsClientError = UnavailableError(
                    f"gateway unreachable: {type(exc).__name__}"
                )
            else:
                if response.is_success:
                    try:
                        return msgspec.json.decode(response.content, type=type_)
                    except msgspec.DecodeError as exc:
                        raise WorkflowsClientError(
                            f"unexpected answer from the gateway: {exc}", response.status_code
                        ) from None
                error = _error(response)
            if not (retry and isinstance(error, UnavailableError) and attempt < self._retries):
                raise error
            attempt += 1
            await asyncio.sleep(self._retry_wait * 2 ** (attempt - 1))


async def _sse_updates(response: httpx.Response) -> AsyncIterator[ProgressUpdate]:
    """The `data:` events of a Server-Sent Events response, as `ProgressUpdate`s."""
    event_id: int | None = None
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                update = msgspec.json.decode("\n".join(data), type=ProgressUpdate)
                yield msgspec.structs.replace(update, event_id=event_id)
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _error(response: httpx.Response) -> WorkflowsClientError:
    try:
        body = msgspec.json.decode(response.content, type=_ErrorBody)
    except msgspec.DecodeError:
        body = _ErrorBody(error=response.reason_phrase or "error")
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = UnavailableError if response.status_code >= 500 else WorkflowsClientError
    return kind(body.error, response.status_code, body.field)


__all__ = [
    "AuthenticationError",
    "BulkJob",
    "CacheInvalidated",
    "ConflictError",
    "DeadLetter",
    "DeadLetterList",
    "ErrorDetail",
    "Event",
    "EventAccepted",
    "InboxItem",
    "InstanceDetail",
    "InstancePage",
    "InstanceSummary",
    "NotFoundError",
    "ProgressToken",
    "ProgressUpdate",
    "RateLimitInfo",
    "RateLimitList",
    "RequestRejectedError",
    "SearchCriteria",
    "SendResult",
    "StartedRun",
    "Status",
    "StepDetail",
    "TriggerInfo",
    "TriggerResponse",
    "UnavailableError",
    "WorkflowStatus",
    "WorkflowsClient",
    "WorkflowsClientError",
]
