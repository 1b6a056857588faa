"""`howlerhire schedules`: the cron jobs as a table, read through the gateway's GET /schedules."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from shared.client import WorkflowsClient, WorkflowsClientError

COLUMNS = (
    ("job", "job"),
    ("expression", "expression"),
    ("timezone", "tz"),
    ("lastSlot", "last slot fired"),
    ("nextFire", "next fire"),
    ("skipped", "skipped"),
)


def table(rows: list[dict[str, Any]]) -> str:
    """Rows as aligned text columns ("-" where a value is missing)."""
    cells = [[title for _, title in COLUMNS]]
    cells += [
        [str(row.get(key, "-") if row.get(key) is not None else "-") for key, _ in COLUMNS]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells
    )


async def _fetch(url: str, token: str) -> list[dict[str, Any]]:
    async with WorkflowsClient(url, token, timeout=10.0) as client:
        return await client.schedules()


def main() -> int:
    url = os.environ.get("GATEWAY_URL", "http://127.0.0.1:8787")
    token = os.environ.get("WORKFLOWS_AUTH_TOKEN", "")
    if not token and os.path.exists("var/auth-token"):
        with open("var/auth-token") as handle:  # what `howlerhire up` generated
            token = handle.read().strip()
    if not token:
        print("schedules: WORKFLOWS_AUTH_TOKEN is not set", file=sys.stderr)
        return 2
    try:
        rows = asyncio.run(_fetch(url, token))
    except WorkflowsClientError as exc:
        print(f"schedules: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print("no schedules recorded yet (is the scheduler running?)")
        return 0
    print(table(rows))
    return 0
