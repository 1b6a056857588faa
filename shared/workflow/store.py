"""Instance records in a KV bucket, written only by create or compare-and-set."""

from __future__ import annotations

from collections.abc import Callable

import nats.js.errors
from nats.js.kv import KeyValue

from shared.errors import StepResultTooLargeError
from shared.workflow.model import InstanceState, decode_state, encode

# One record must fit one NATS message (1 MiB by default) with room for headers.
MAX_RECORD_BYTES = 1_000_000

Mutation = Callable[[InstanceState], bool]


def state_key(workflow: str, instance_id: str) -> str:
    return f"{workflow}.{instance_id}"


class Conflict(Exception):
    """Someone else wrote the record first (internal: the caller reloads)."""


class InstanceStore:
    """Reads and writes instance records; every write is a create or a CAS update."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, workflow: str, instance_id: str) -> tuple[InstanceState, int] | None:
        try:
            entry = await self.kv.get(state_key(workflow, instance_id))
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        if entry.value is None:
            return None
        return decode_state(entry.value), int(entry.revision or 0)

    async def create(self, state: InstanceState) -> int | None:
        """Create the record; None when it already exists."""
        data = _checked(state)
        try:
            return int(await self.kv.create(state_key(state.workflow, state.instance_id), data))
        except nats.js.errors.KeyWrongLastSequenceError:
            return None

    async def update(self, state: InstanceState, revision: int) -> int:
        """Write `state` if the record is still at `revision`; raise Conflict otherwise."""
        data = _checked(state)
        try:
            return int(
                await self.kv.update(
                    state_key(state.workflow, state.instance_id), data, last=revision
                )
            )
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise Conflict from exc

    async def mutate(
        self,
        workflow: str,
        instance_id: str,
        change: Mutation,
    ) -> tuple[InstanceState, int] | None:
        """Apply `change` (which edits the record in place and says whether it changed
        anything) until the CAS write wins. None when the instance does not exist."""
        while True:
            current = await self.get(workflow, instance_id)
            if current is None:
                return None
            state, revision = current
            if not change(state):
                return state, revision
            try:
                return state, await self.update(state, revision)
            except Conflict:
                continue


def _checked(state: InstanceState) -> bytes:
    data = encode(state)
    if len(data) > MAX_RECORD_BYTES:
        raise StepResultTooLargeError(
            f"instance record would be {len(data)} bytes, over the {MAX_RECORD_BYTES}-byte limit"
        )
    return data
