"""Profile one contender at 50 in flight with pyinstrument — `python -m bench.profile`.

`--target engine` (the in-process engine worker and its driver) or `floor`; `--sync
always|default` picks the embedded server. Prints pyinstrument's text report (and writes
an HTML one with `--html FILE`); the last line is a JSON summary like the other scripts.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from pyinstrument import Profiler
from pyinstrument.renderers import ConsoleRenderer

from bench.engine import EngineInProcess
from bench.floor import Floor
from bench.harness import closed_loop, emit, environment, nats_servers


async def main_async(args: Any) -> dict[str, Any]:
    profile = f"sync-{args.sync}"
    with nats_servers(args.nats_url, [profile]) as urls:
        url = next(iter(urls.values()))
        contender = (
            EngineInProcess(url, "engine") if args.target == "engine" else Floor(url, "floor")
        )
        async with contender.session() as one:
            await closed_loop(one, args.in_flight, 1.0)  # warm
            profiler = Profiler(interval=0.0005, async_mode="disabled")
            profiler.start()
            m = await closed_loop(one, args.in_flight, args.duration)
            profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=args.all))
    # The flat view: where the time is spent, by function (self time), across all callers.
    print(profiler.output(ConsoleRenderer(unicode=False, color=False, flat=True, show_all=True)))
    if args.html:
        with open(args.html, "w") as fh:
            fh.write(profiler.output_html())
    return {
        "bench": "profile",
        "target": args.target,
        "sync": args.sync,
        "c": args.in_flight,
        **m.figures(),
        "env": environment(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", choices=["engine", "floor"], default="engine")
    p.add_argument("--sync", choices=["always", "default"], default="default")
    p.add_argument("--in-flight", type=int, default=50)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--nats-url")
    p.add_argument("--html")
    p.add_argument("--all", action="store_true", help="show library frames in the tree")
    emit(asyncio.run(main_async(p.parse_args())))


if __name__ == "__main__":
    main()
