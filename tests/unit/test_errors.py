"""The error tree drawn in shared/errors.py is the code's: every AppError, under its base."""

from __future__ import annotations

import importlib
import pkgutil
import re

import services
import shared
import shared.errors
from shared.errors import AppError

_LINE = re.compile(r"^(?P<indent>(?:│  |   )*)(?:├─ |└─ )(?P<name>\w+)")


def _drawn() -> dict[str, str]:
    """Each drawn class → the class drawn as its parent."""
    doc = shared.errors.__doc__ or ""
    tree = doc.split("```")[1].strip().splitlines()
    assert tree[0] == "AppError"
    parents: dict[str, str] = {}
    stack = ["AppError"]
    for line in tree[1:]:
        match = _LINE.match(line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 3 + 1
        del stack[depth:]
        parents[match["name"]] = stack[-1]
        stack.append(match["name"])
    return parents


def _defined() -> dict[str, str]:
    """Each AppError subclass defined in shared/ or services/ → its nearest AppError base."""
    for package in (shared, services):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
    found: dict[str, str] = {}
    pending = [AppError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.split(".")[0] in ("shared", "services"):
                base = next(b for b in sub.__mro__[1:] if issubclass(b, AppError))
                found[sub.__name__] = base.__name__
    return found


def test_every_app_error_is_drawn_under_its_base():
    """No AppError subclass is missing from the drawing, none is drawn that does not exist,
    and each is drawn under the class it inherits from."""
    drawn, defined = _drawn(), _defined()
    assert sorted(set(defined) - set(drawn)) == [], "subclasses missing from the drawing"
    assert sorted(set(drawn) - set(defined)) == [], "drawn classes that do not exist"
    wrong = {name: (drawn[name], base) for name, base in defined.items() if drawn[name] != base}
    assert wrong == {}, "drawn parent != real base"
    assert len(defined) >= 20  # the walk did import the adapters and the client


def test_a_misdrawn_tree_is_caught():
    """The parser reads nesting from the box characters (so a misplaced line is a failure)."""
    parents = _drawn()
    assert parents["StepResultTooLargeError"] == "NonRetryableError"
    assert parents["NonRetryableError"] == "WorkflowError"
    assert parents["UnavailableError"] == "WorkflowsClientError"
    assert parents["ConfigError"] == "AppError"
