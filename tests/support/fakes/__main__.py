"""Run one fake as a process: `python -m tests.support.fakes <kind> [--port N] [--fixtures DIR]`.

Prints `READY <url>` (and, for the canary, `CONTROL <url>`) once listening; stops on
SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from tests.support.fakes import FAKES, Canary, RunningFake

DEFAULT_FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.fakes")
    parser.add_argument("kind", choices=[*FAKES, "canary"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.kind == "canary":
        canary = Canary(args.port).start()
        print(f"READY {canary.url}\nCONTROL {canary.control_url}", flush=True)
        stop.wait()
        canary.stop()
        return 0
    fake = RunningFake(FAKES[args.kind](args.fixtures), args.port).start()
    print(f"READY {fake.url}", flush=True)
    stop.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
