"""`python -m shared.standin`: serve the offline stand-in on STANDIN_HOST:STANDIN_PORT."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from shared.standin.server import make_server


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s standin: %(message)s")
    host = os.environ.get("STANDIN_HOST", "127.0.0.1")
    raw_port = os.environ.get("STANDIN_PORT", "0")
    try:
        port = int(raw_port)
    except ValueError:
        print(f"STANDIN_PORT must be a port number, not {raw_port!r}", file=sys.stderr)
        return 2
    try:
        server = make_server(host, port)
    except OSError as exc:
        print(f"offline stand-in: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, which runs in this thread: ask from another.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.info("offline stand-in listening on http://%s:%d", *server.server_address[:2])
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
