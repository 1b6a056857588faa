"""Instance records in a KV bucket, written only by create or compare-and-set."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
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


class StoreWriteError(nats.errors.Error):
    """JetStream refused a record write for a reason other than a lost race."""


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    seq: int = 0
    error: _ApiError | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)
WRONG_LAST_SEQUENCE = 10071
WRITE_TIMEOUT = 5.0


class InstanceStore:
    """Reads and writes instance records; every write is a create or a CAS update.

    Writes are one request each to the bucket's subject with
    `Nats-Expected-Last-Subject-Sequence` (0 for a create): the server's compare-and-set,
    without the client library's extra work (its create re-reads the key on a conflict to
    look for a delete marker; we never delete records). Reads go through the KV API.
    """

    def __init__(self, kv: KeyValue, nc: NATS) -> None:
        self.kv = kv
        self.nc = nc
        self.prefix = f"$KV.{kv._name}."

    async def _write(self, key: str, data: bytes, last: int) -> int | None:
        """Publish `data` if the key's last revision is `last`; None if it is not."""
        reply = await self.nc.request(
            self.prefix + key,
            data,
            timeout=WRITE_TIMEOUT,
            headers={"Nats-Expected-Last-Subject-Sequence": str(last)},
        )
        ack = _ack_decoder.decode(reply.data)
        if ack.error is not None:
            if ack.error.err_code == WRONG_LAST_SEQUENCE:
                return None
            raise StoreWriteError(
                f"record write refused: {ack.error.description} (code {ack.error.err_code})"
            )
        return ack.seq

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
        return await self._write(state_key(state.workflow, state.instance_id), _checked(state), 0)

    async def update(self, state: InstanceState, revision: int) -> int:
        """Write `state` if the record is still at `revision`; raise Conflict otherwise."""
        written = await self._write(
            state_key(state.workflow, state.instance_id), _checked(state), revision
        )
        if written is None:
            raise Conflict
        return written

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
