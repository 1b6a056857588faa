"""The one error tree of HowlerHire Jobs.

Every `AppError` subclass, wherever it is defined, is drawn here under its base (a test
walks them all). Classes defined elsewhere name their module.

```
AppError
├─ ConfigError                missing/bad env at start → exit naming the variable
├─ InvalidEventError          undecodable payload → 400 at the gateway, dead-letter in a consumer
├─ InvalidTokenError          (shared.unsubscribe) an unsubscribe token malformed, forged or expired
├─ WorkflowError
│  ├─ NonRetryableError       fail the step at once
│  │  ├─ StepResultTooLargeError  a step's result does not fit the instance record
│  │  ├─ DocumentError        (shared.documents) not the document it claims, or unsafe
│  │  │  └─ NoTextError       (shared.documents) a readable document with no text in it
│  │  ├─ ForbiddenUrlError    (shared.storage) a file URL outside the storage bucket
│  │  ├─ FileTooLargeError    (shared.storage) a stored file over the size cap
│  │  ├─ GitHubNotFoundError  (shared.sources.github) no such user or repository
│  │  ├─ BoardNotFoundError   (shared.sources.fetch) no such board (company) on that service
│  │  └─ AllSourcesFailedError  (services.discovery.workflows) no board could be read
│  ├─ RetryAfterError         upstream asked us to wait (429, GitHub rate limit)
│  ├─ StepFailedError         retries exhausted or non-retryable; chained to the cause
│  ├─ StepTimeoutError        one attempt ran past the step's timeout (retryable)
│  ├─ NonDeterminismError     replay met a step sequence that differs from the recorded one
│  ├─ UnknownWorkflowError    no workflow of that id is registered
│  ├─ InstanceNotFoundError   no instance of that id
│  ├─ InvalidTransitionError  the instance's status does not allow the operation
│  │  └─ StepNotFoundError    restart from a step the instance has not recorded
│  └─ DeadLetterNotFoundError no such dead letter (or already re-driven or purged)
├─ UpstreamError              wraps anthropic/resend/supabase/httpx errors at the adapter edge only
│  ├─ MalformedReplyError     (shared.ai.replies) a model reply not in the shape asked for
│  ├─ BoardUnavailableError   (shared.sources.fetch) a board timed out or answered 5xx
│  ├─ BoardMalformedError     (shared.sources.fetch) a 200 whose body is not the board's API
│  └─ SnapshotMissingError    (services.discovery.snapshots) a recorded snapshot expired
├─ WorkflowsClientError       (shared.client) the gateway refused or failed a request
│  ├─ AuthenticationError     401: missing or wrong token
│  ├─ RequestRejectedError    400/413/422: the request is malformed or names no workflow
│  ├─ NotFoundError           404: no such instance
│  ├─ ConflictError           409: the instance's status does not allow it
│  └─ UnavailableError        503, 5xx or no connection: safe to retry with the same ids
└─ CliError                   (shared.cli.session) a `howlerhire` command cannot go on (exit code)
```
"""

from __future__ import annotations

from datetime import timedelta


class AppError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(AppError):
    """The environment is missing a variable or holds a bad value."""


class InvalidEventError(AppError):
    """A payload that cannot be decoded into the event or message it claims to be."""


class WorkflowError(AppError):
    """An error in running a workflow."""


class NonRetryableError(WorkflowError):
    """Raised by a step to fail at once, without retries."""


class RetryAfterError(WorkflowError):
    """Raised by a step when an upstream asked us to wait before trying again."""

    def __init__(self, message: str, delay: timedelta | float) -> None:
        super().__init__(message)
        self.delay = delay if isinstance(delay, timedelta) else timedelta(seconds=delay)


class StepFailedError(WorkflowError):
    """A step failed for good: its retries are exhausted or its error was non-retryable.

    `error_name` is the class name of the step's last error, which is what the instance
    records and what a replay raises again.
    """

    def __init__(self, step: str, error_name: str, message: str) -> None:
        super().__init__(f"step {step!r} failed: {error_name}: {message}")
        self.step = step
        self.error_name = error_name
        self.error_message = message


class StepTimeoutError(WorkflowError):
    """One attempt of a step ran longer than the step's timeout."""


class StepResultTooLargeError(NonRetryableError):
    """A step's result is too large to be recorded."""


class NonDeterminismError(WorkflowError):
    """A replay's step sequence differs from the one recorded for the instance."""


class UnknownWorkflowError(WorkflowError):
    """No workflow with this id is registered."""


class InstanceNotFoundError(WorkflowError):
    """No instance with this id exists for the workflow."""


class InvalidTransitionError(WorkflowError):
    """An operation the instance's status does not allow (e.g. resume a complete one)."""


class StepNotFoundError(InvalidTransitionError):
    """A restart from a step the instance has not recorded."""


class DeadLetterNotFoundError(WorkflowError):
    """No dead letter at that sequence (never was, or already re-driven or purged)."""


class UpstreamError(AppError):
    """An error from a third-party API, wrapped at the adapter edge."""
