"""The instance-record store as a run sees it: a protocol, and an in-memory one for tests.

Every write is a create or a compare-and-set on the revision last read; a lost race
raises `Conflict` and the writer reloads. `store.InstanceStore` is the implementation on
a NATS KV bucket; `MemoryStore` keeps records in a dict, with the same rules, so the
execution of a delivery can be tested without a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from shared.errors import StepResultTooLargeError
from shared.workflow.model import InstanceState, decode_state, encode
from shared.workflow.store import MAX_RECORD_BYTES, Conflict, Mutation

__all__ = ["Conflict", "InstanceStore", "MemoryStore"]


class InstanceStore(Protocol):
    """Reads and writes instance records; every write is a create or a CAS update."""

    async def get(self, workflow: str, instance_id: str) -> tuple[InstanceState, int] | None:
        """The record and its revision; None when there is none."""
        ...

    async def create(self, state: InstanceState) -> int | None:
        """Create the record and return its revision; None when it already exists."""
        ...

    async def update(self, state: InstanceState, revision: int) -> int:
        """Write `state` if the record is still at `revision`; raise Conflict otherwise."""
        ...

    async def mutate(
        self, workflow: str, instance_id: str, change: Mutation
    ) -> tuple[InstanceState, int] | None:
        """Apply `change` until its CAS write wins; None when the instance does not exist."""
        ...

    async def decoded(self, data: bytes) -> InstanceState:
        """A stored record (as read from the bucket or its stream) in the engine's view:
        opened when it is sealed for its user."""
        ...


class MemoryStore:
    """An `InstanceStore` in a dict: records are kept encoded, as the bucket keeps them,
    so a reader never shares objects with a writer; revisions grow from one counter."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], tuple[bytes, int]] = {}
        self.last_revision = 0
        self.writes = 0

    def _put(self, state: InstanceState) -> int:
        data = encode(state)
        if len(data) > MAX_RECORD_BYTES:  # the bucket's limit, so tests meet it too
            raise StepResultTooLargeError(
                f"instance record would be {len(data)} bytes, "
                f"over the {MAX_RECORD_BYTES}-byte limit"
            )
        self.last_revision += 1
        self.writes += 1
        self.records[(state.workflow, state.instance_id)] = (data, self.last_revision)
        return self.last_revision

    async def get(self, workflow: str, instance_id: str) -> tuple[InstanceState, int] | None:
        found = self.records.get((workflow, instance_id))
        if found is None:
            return None
        return decode_state(found[0]), found[1]

    async def create(self, state: InstanceState) -> int | None:
        if (state.workflow, state.instance_id) in self.records:
            return None
        return self._put(state)

    async def update(self, state: InstanceState, revision: int) -> int:
        found = self.records.get((state.workflow, state.instance_id))
        if found is None or found[1] != revision:
            raise Conflict
        return self._put(state)

    async def mutate(
        self, workflow: str, instance_id: str, change: Mutation
    ) -> tuple[InstanceState, int] | None:
        current = await self.get(workflow, instance_id)
        if current is None:
            return None
        state, revision = current
        if not change(state):
            return state, revision
        return state, await self.update(state, revision)

    async def decoded(self, data: bytes) -> InstanceState:
        return decode_state(data)

    def peek(self, workflow: str, instance_id: str) -> InstanceState:
        """The stored record (tests): a copy, decoded as a reader would see it."""
        return decode_state(self.records[(workflow, instance_id)][0])


if TYPE_CHECKING:
    # Both stores keep the protocol (mypy checks it here, not at the first use in a test).
    from shared.workflow import store as _kv

    _memory: InstanceStore = MemoryStore()
    _bucket: type[InstanceStore] = _kv.InstanceStore
