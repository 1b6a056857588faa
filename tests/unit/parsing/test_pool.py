"""The parsing service's extraction processes do not outlive a SIGKILLed service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from services.parsing.pool import exit_with_parent

if __name__ == "__main__":
    pool = ProcessPoolExecutor(
        max_workers=2, mp_context=get_context("spawn"),
        initializer=exit_with_parent, initargs=(os.getpid(),),
    )
    pids = {pool.submit(os.getpid).result() for _ in range(8)}
    print(" ".join(map(str, sorted(pids))), flush=True)
    time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state


def test_extraction_processes_exit_when_the_service_is_killed(tmp_path):
    """SIGKILL of the parent: every pool process is gone soon after, none left as orphan."""
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.stdout is not None
    with proc.stdout:  # closed here: an unclosed pipe is a ResourceWarning at GC
        line = proc.stdout.readline().decode()
    pids = [int(p) for p in line.split()]
    assert pids and all(_alive(p) for p in pids)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if _alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert left == []
