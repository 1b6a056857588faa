"""Steps of the demo workflow: plain async functions, no engine imports."""

from __future__ import annotations

import os


async def compose(name: str) -> str:
    return f"Hello, {name}!"


async def sign(text: str) -> str:
    return f"{text} (from worker pid {os.getpid()})"
