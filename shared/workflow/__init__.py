"""The durable workflow engine on NATS JetStream. Public API only through this module.

Three audiences: workflow authors (`@workflow`, `Context`, retry policies, the step cache's
`CachePolicy`, the rate limits' `Spend`, quality gates (`Validate`, `Feedback`,
`step_feedback`), usage metering (`record_usage`), the errors a step raises or meets), operators
(`Instances`: trigger, read, list, pause, resume, terminate, restart, send events, bulk
actions, invalidate the step cache, read the rate limits; and the records they read), and the
runtime a service process starts (`Worker`, and the topology it ensures).
tests/unit/engine/test_exports.py pins the list, so a change to this surface is deliberate.
"""

from shared.errors import (
    NonDeterminismError,
    NonRetryableError,
    RetryAfterError,
    StepFailedError,
    StepTimeoutError,
)
from shared.workflow.bulk import BulkFilter, BulkJob
from shared.workflow.cache import CachePolicy
from shared.workflow.context import Context
from shared.workflow.control import Instances, Page, Started
from shared.workflow.definition import Registry, Workflow, workflow
from shared.workflow.gates import Feedback, Validate, record_usage, step_feedback
from shared.workflow.model import ErrorInfo, EventEnvelope, InstanceState, StepRecord
from shared.workflow.progress import Progress, progress
from shared.workflow.ratelimit import LimitState, Rate, Spend
from shared.workflow.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from shared.workflow.topology import ensure_consumers, ensure_topology
from shared.workflow.worker import Worker

# Author API: declaring workflows and writing their bodies.
__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "CachePolicy",
    "Context",
    "Feedback",
    "NonDeterminismError",
    "NonRetryableError",
    "Progress",
    "Registry",
    "RetryAfterError",
    "RetryPolicy",
    "Spend",
    "StepFailedError",
    "StepTimeoutError",
    "Validate",
    "Workflow",
    "progress",
    "record_usage",
    "step_feedback",
    "workflow",
]
# Operator API: instances from outside a worker (gateway, CLI, dashboard, tests).
__all__ += [
    "BulkFilter",
    "BulkJob",
    "ErrorInfo",
    "EventEnvelope",
    "InstanceState",
    "Instances",
    "LimitState",
    "Page",
    "Rate",
    "Started",
    "StepRecord",
]
# Runtime: what a service process runs, and the topology it ensures.
__all__ += [
    "Worker",
    "ensure_consumers",
    "ensure_topology",
]
