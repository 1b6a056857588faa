"""What sealing personal data costs the engine, in CPU per record write — `python -m bench.sealing`.

The end-to-end benchmark (`BENCH_SEALED=1 python -m bench.engine`) is the real figure, but
on a shared machine its spread hides a few per cent. This measures the part sealing adds,
in process CPU time: encoding a record as the store writes it (`InstanceStore._encoded`)
and decoding it as it reads it (`InstanceStore.decoded`), without and with a data key, for
the benchmark workflow's record after each of its steps (bench/worker.py: 7 steps).
Compare the added time per instance with the engine's CPU per instance (bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.crypto import DataKey, UserKeys, user_key_name
from shared.workflow.model import InstanceState, StepRecord
from shared.workflow.store import InstanceStore

STEPS = 7


class _NoKV:
    """The keys bucket is never reached: the data key is cached, as in a running worker."""

    _name = "bench_keys"


def _record(steps: int) -> InstanceState:
    now = datetime.now(UTC)
    return InstanceState(
        workflow="bench",
        instance_id="0123456789abcdef0123456789abcdef",
        status="running",
        params={"userId": "bench-user-7", "email": "someone@example.com"},
        created_at=now,
        updated_at=now,
        steps=[
            StepRecord(
                seq=n,
                name=f"step-{n}",
                status="complete",
                attempts=1,
                started_at=now,
                ended_at=now,
                result={"n": n, "value": f"result of step {n}"},
            )
            for n in range(steps)
        ],
    )


def _store(sealed: bool) -> InstanceStore:
    store = InstanceStore.__new__(InstanceStore)
    store.keys = None
    if sealed:
        keys = UserKeys(_NoKV(), [("m1", AESGCM(AESGCM.generate_key(bit_length=256)))])  # type: ignore[arg-type]
        keys._cache[user_key_name("bench-user-7")] = (
            DataKey("k1", AESGCM(AESGCM.generate_key(bit_length=256))),
            float("inf"),
        )
        keys.key_for = _cached(keys)  # type: ignore[method-assign]
        store.keys = keys
    return store


def _cached(keys: UserKeys) -> Any:
    key = next(iter(keys._cache.values()))[0]

    async def key_for(user_id: str, *, create: bool) -> DataKey | None:
        return key

    return key_for


async def _per_instance(store: InstanceStore, rounds: int) -> float:
    """CPU seconds for one instance's writes (after each step, and running/complete) and
    as many reads."""
    records = [_record(n) for n in range(STEPS + 1)] + [_record(STEPS)]
    began = time.process_time()
    for _ in range(rounds):
        for state in records:
            data = await store._encoded(state)
            await store.decoded(data)
    return (time.process_time() - began) / rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    rounds = 300 if args.quick else 3000
    plain = sealed = 0.0
    for _ in range(3):  # interleaved, best of three: the least disturbed run of each
        one_plain = asyncio.run(_per_instance(_store(False), rounds))
        one_sealed = asyncio.run(_per_instance(_store(True), rounds))
        plain = one_plain if not plain else min(plain, one_plain)
        sealed = one_sealed if not sealed else min(sealed, one_sealed)
    added = (sealed - plain) * 1000
    print(f"record encode+decode per instance ({STEPS + 2} writes and reads):")
    print(f"  plain  {plain * 1000:.3f} ms CPU")
    print(f"  sealed {sealed * 1000:.3f} ms CPU  (+{added:.3f} ms per instance)")
    for rate in (400, 1000):
        print(
            f"  at {rate} instances/s on one core ({1000 / rate:.2f} ms each): "
            f"sealing costs {100 * added / (1000 / rate):.1f} % of it"
        )


if __name__ == "__main__":
    main()
