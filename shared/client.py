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
from collections.abc import Sequence
from typing import Any, TypeVar
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


class Event(Body, frozen=True, omit_defaults=True):
    """An Inngest-style event. Give it an `id` to make sending it idempotent."""

    name: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    id: str | None = None
    ts: int | None = None
    v: str | None = None


#: What `send` answers: the events' ids and the instances they started.
SendResult = EventsResponse


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

    # -- cross-run state ----------------------------------------------------------------

    async def invalidate_cache(
        self, workflow: str, step: str | None = None, prefix: str | None = None
    ) -> CacheInvalidated:
        """Remove `workflow`'s cached step results (one step's; keys starting with `prefix`)."""
        path = f"/cache/{quote(workflow, safe='')}"
        if step is not None:
            path += f"/{quote(step, safe='')}"
        params = {"prefix": prefix} if prefix else None
        return await self._send("DELETE", path, None, CacheInvalidated, retry=True, params=params)

    async def rate_limits(self) -> RateLimitList:
        """Every shared rate limit's tokens, rate and drain now."""
        return await self._send("GET", "/rate-limits", None, RateLimitList, retry=True)

    # -- plumbing ------------------------------------------------------------------------

    async def _post(self, path: str, body: Any, type_: type[T], *, retry: bool) -> T:
        return await self._send("POST", path, body, type_, retry=retry)

    async def _send(
        self,
        method: str,
        path: str,
        body: Any,
        type_: type[T],
        *,
        retry: bool,
        params: dict[str, str] | None = None,
    ) -> T:
        content = None if body is None else msgspec.json.encode(body)
        attempt = 0
        while True:
            try:
                response = await self._http.request(method, path, content=content, params=params)
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
    "CacheInvalidated",
    "ConflictError",
    "ErrorDetail",
    "Event",
    "NotFoundError",
    "RateLimitInfo",
    "RateLimitList",
    "RequestRejectedError",
    "SearchCriteria",
    "SendResult",
    "StartedRun",
    "Status",
    "TriggerResponse",
    "UnavailableError",
    "WorkflowStatus",
    "WorkflowsClient",
    "WorkflowsClientError",
]
