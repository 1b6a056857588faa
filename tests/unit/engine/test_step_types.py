"""A step's result type defaults to its function's return annotation."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from shared.workflow.context import return_type

if TYPE_CHECKING:
    from decimal import Decimal as OnlyForTypes


class Point(msgspec.Struct):
    x: int
    y: int


class Opaque:
    """A class msgspec cannot build from JSON."""

    def __init__(self, handle: object) -> None:
        self.handle = handle


async def point() -> Point:
    return Point(1, 2)


async def points() -> list[Point]:
    return []


async def when() -> datetime:
    raise NotImplementedError


async def untyped():  # type: ignore[no-untyped-def]
    return 1


async def anything() -> Any:
    return 1


async def opaque() -> Opaque:
    return Opaque(None)


async def unresolvable() -> OnlyForTypes:
    raise NotImplementedError


def deferred() -> Awaitable[Point]:
    return point()


def test_the_annotation_is_the_result_type():
    assert return_type(point) is Point
    assert return_type(points) == list[Point]
    assert return_type(when) is datetime
    assert return_type(deferred) is Point  # a plain function returning an awaitable


def test_no_usable_annotation_means_the_plain_json_value():
    assert return_type(untyped) is None
    assert return_type(anything) is None
    assert return_type(opaque) is None  # msgspec cannot convert to it
    assert return_type(unresolvable) is None  # imported only for type checking
    assert return_type(lambda: 1) is None


def test_the_recorded_json_converts_back_to_the_annotated_type():
    recorded = msgspec.json.decode(msgspec.json.encode([Point(1, 2)]))
    assert msgspec.convert(recorded, return_type(points)) == [Point(1, 2)]


class Tree(msgspec.Struct):
    children: list[Tree] = []


async def nested_opaque() -> list[Opaque]:
    return []


async def tree() -> Tree:
    return Tree()


def test_nested_and_recursive_types():
    assert return_type(nested_opaque) is None
    assert return_type(tree) is Tree
