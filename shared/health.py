"""`howlerhire health SERVICE`: the container health check of every service (one image).

- gateway: `GET /health` on its own port answers 200.
- a worker (resume, parsing, …): with the service's own NATS credentials, the durable
  consumer of each of its workflows answers (so the credentials, the permissions and
  the topology the service needs are all in place).
- scheduler: its credentials connect and the work stream answers.

Exit 0 when healthy, 1 with one line saying what is wrong otherwise. No secret is printed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
import urllib.error
import urllib.request

from shared.bus import Names
from shared.natsauth import GATEWAY, SCHEDULER, worker_services


def check_gateway(port: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return None if reply.status == 200 else f"/health answered {reply.status}"
    except (urllib.error.URLError, OSError) as exc:
        return f"/health did not answer: {exc}"


async def check_nats(service: str, url: str, namespace: str) -> str | None:
    import nats.errors
    import nats.js.errors

    from shared.bus import connect

    names = Names(namespace)
    try:
        nc = await asyncio.wait_for(connect(url, f"howlerhire-health-{service}", attempts=1), 10)
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return f"NATS did not accept the connection: {type(exc).__name__}"
    try:
        js = nc.jetstream()
        if service == SCHEDULER:
            await js.stream_info(names.stream)
            return None
        workflows = worker_services().get(service)
        if not workflows:
            return f"{service} runs no workflow of the catalog"
        for spec in workflows:
            await js.consumer_info(names.stream, names.consumer(spec.id), timeout=5)
        return None
    except nats.js.errors.NotFoundError as exc:
        return f"missing stream or consumer ({exc}): run `howlerhire nats setup`"
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        return f"NATS did not answer: {type(exc).__name__}"
    finally:
        await nc.close()


def running_service() -> str | None:
    """The service a `python -m services.<name>` process on this host (container) runs."""
    from pathlib import Path

    for entry in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for flag, module in itertools.pairwise(argv):
            if flag == b"-m" and module.startswith(b"services."):
                return module.decode().removeprefix("services.")
    return None


def main(service: str | None) -> int:
    import logging

    # One try, one line of verdict: not the connection's "still retrying" warnings.
    logging.getLogger("shared.bus").setLevel(logging.ERROR)
    service = service or os.environ.get("HOWLERHIRE_SERVICE") or running_service()
    if not service:
        print("no service named and none found running here", file=sys.stderr)
        return 1
    if service == GATEWAY:
        problem = check_gateway(os.environ.get("GATEWAY_PORT") or "8787")
    else:
        problem = asyncio.run(
            check_nats(
                service,
                os.environ.get("NATS_URL") or "nats://127.0.0.1:4222",
                os.environ.get("HOWLERHIRE_NAMESPACE") or "hh",
            )
        )
    if problem:
        print(f"{service} unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0
