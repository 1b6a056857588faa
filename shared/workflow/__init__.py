"""The durable workflow engine on NATS JetStream. Public API only through this module."""

from shared.errors import (
    NonDeterminismError,
    NonRetryableError,
    RetryAfterError,
    StepFailedError,
    StepTimeoutError,
)
from shared.workflow.cache import CachePolicy
from shared.workflow.context import Context
from shared.workflow.control import Instances, Page, Started
from shared.workflow.definition import Registry, Workflow, workflow
from shared.workflow.model import ErrorInfo, EventEnvelope, InstanceState, StepRecord
from shared.workflow.ratelimit import LimitState, Rate, Spend, StepLimit
from shared.workflow.retry import DEFAULT_RETRY, NO_RETRY, RetryPolicy
from shared.workflow.topology import ensure_consumers, ensure_topology
from shared.workflow.worker import Worker

__all__ = [
    "DEFAULT_RETRY",
    "NO_RETRY",
    "CachePolicy",
    "Context",
    "ErrorInfo",
    "EventEnvelope",
    "InstanceState",
    "Instances",
    "LimitState",
    "NonDeterminismError",
    "NonRetryableError",
    "Page",
    "Rate",
    "Registry",
    "RetryAfterError",
    "RetryPolicy",
    "Spend",
    "Started",
    "StepFailedError",
    "StepLimit",
    "StepRecord",
    "StepTimeoutError",
    "Worker",
    "Workflow",
    "ensure_consumers",
    "ensure_topology",
    "workflow",
]
