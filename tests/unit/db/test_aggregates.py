"""The Repository protocol is the union of its aggregates, and both backends implement each."""

from __future__ import annotations

import inspect

import pytest

from shared.db import Applications, EmailLog, Jobs, Profiles, Repository, Resumes, Usage
from shared.db.postgres import PostgresRepository
from shared.db.supabase import SupabaseRepository

AGGREGATES = (Profiles, Resumes, Jobs, Applications, EmailLog, Usage)


def _methods(protocol: type) -> set[str]:
    return {name for name, value in vars(protocol).items() if inspect.iscoroutinefunction(value)}


def test_repository_is_exactly_its_aggregates():
    """Each operation belongs to one aggregate; Repository adds only aclose."""
    seen: dict[str, str] = {}
    for aggregate in AGGREGATES:
        for name in _methods(aggregate):
            assert name not in seen, f"{name} is in {seen.get(name)} and {aggregate.__name__}"
            seen[name] = aggregate.__name__
    assert _methods(Repository) == {"aclose"}
    assert set(seen) | {"aclose"} == {
        name for name in dir(Repository) if inspect.iscoroutinefunction(getattr(Repository, name))
    }


@pytest.mark.parametrize("backend", [PostgresRepository, SupabaseRepository])
def test_both_backends_implement_every_aggregate(backend):
    """Every method of every aggregate exists on the backend with the same parameters."""
    for aggregate in AGGREGATES:
        for name in _methods(aggregate):
            expected = inspect.signature(getattr(aggregate, name)).parameters
            actual = inspect.signature(getattr(backend, name)).parameters
            assert list(actual) == list(expected), (backend.__name__, name)
            kinds = [(p.kind, p.default is inspect.Parameter.empty) for p in actual.values()]
            assert kinds == [
                (p.kind, p.default is inspect.Parameter.empty) for p in expected.values()
            ], (backend.__name__, name)
