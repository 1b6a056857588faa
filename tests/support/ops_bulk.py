"""A bulk-action runner process for tests: `python -m tests.support.ops_bulk`.

Runs `Instances.bulk(BULK_ACTION, BulkFilter(workflow=BULK_WORKFLOW, status=BULK_STATUS))`
at BULK_RATE per second with a BULK_LEASE-second lease, then prints the job as JSON.
Environment: NATS_URL, HOWLERHIRE_NAMESPACE and those above.
"""

from __future__ import annotations

import asyncio
import os
import sys

import msgspec

from shared.bus import Names, connect
from shared.workflow import BulkFilter, Instances
from shared.workflow.bulk import BulkActions


async def main() -> int:
    nc = await connect(os.environ["NATS_URL"], "test-bulk", attempts=3)
    workflow = os.environ["BULK_WORKFLOW"]
    instances = Instances(nc, Names(os.environ["HOWLERHIRE_NAMESPACE"]), {workflow: ()})
    instances.bulk_actions = BulkActions(instances, lease=float(os.environ["BULK_LEASE"]))
    job = await instances.bulk(
        os.environ["BULK_ACTION"],  # type: ignore[arg-type]
        BulkFilter(workflow=workflow, status=os.environ.get("BULK_STATUS") or None),
        rate=float(os.environ["BULK_RATE"]),
    )
    print(msgspec.json.encode(job).decode(), flush=True)
    await nc.drain()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
