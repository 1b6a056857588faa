"""The public names of shared.workflow are pinned: a change to the surface is deliberate."""

import shared.workflow

AUTHOR_API = {
    "CachePolicy",
    "Context",
    "DEFAULT_RETRY",
    "Feedback",
    "NO_RETRY",
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
}
OPERATOR_API = {
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
}
RUNTIME_API = {"Worker", "ensure_consumers", "ensure_topology"}


def test_exported_members():
    """`__all__` is exactly the three groups, each name once, and each one importable."""
    exported = shared.workflow.__all__
    assert len(exported) == len(set(exported))
    assert set(exported) == AUTHOR_API | OPERATOR_API | RUNTIME_API
    for name in exported:
        assert getattr(shared.workflow, name) is not None


def test_exported_members_say_where_they_are_documented():
    """Every exported class and function keeps the engine's module name (no accidental
    re-export of a third-party object) and has a docstring a reader can rely on."""
    for name in shared.workflow.__all__:
        member = getattr(shared.workflow, name)
        if isinstance(member, type) or callable(member):
            assert member.__module__.startswith("shared."), name
            assert (member.__doc__ or "").strip(), f"{name} has no docstring"


def test_no_public_name_is_left_out_of_all():
    """Every public name the package defines or imports is in `__all__` (or a submodule)."""
    public = {
        name
        for name, value in vars(shared.workflow).items()
        if not name.startswith("_") and type(value).__name__ != "module"
    }
    assert public == set(shared.workflow.__all__)


def test_the_topology_moved_without_breaking_old_imports():
    """`shared.bus.ensure_topology` (the old place) is the topology module's function."""
    import shared.bus
    from shared.workflow import topology

    assert shared.bus.ensure_topology is topology.ensure_topology
