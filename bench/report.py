"""Results as a Markdown table (what bench/README.md holds), printed before the JSON line."""

from __future__ import annotations

from typing import Any


def _fig(level: dict[str, Any] | None, key: str, digits: int = 0) -> str:
    if not level or key not in level:
        return "-"
    value = level[key]
    low, high = level.get("range", {}).get(key, [value, value])
    spread = f" ({low:,.{digits}f}..{high:,.{digits}f})" if level.get("rounds", 1) > 1 else ""
    return f"{value:,.{digits}f}{spread}"


def table(configs: dict[str, dict[str, Any]]) -> str:
    """One row per configuration: c1 rate and latency, c50 rate, steps/s and latency."""
    lines = [
        "| configuration | c1 wf/s | c1 p50 ms | c1 p99 ms | c50 wf/s | c50 steps/s | c50 p50 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, levels in configs.items():
        c1, c50 = levels.get("c1"), levels.get("c50")
        lines.append(
            f"| {name} | {_fig(c1, 'workflows_per_s')} | {_fig(c1, 'p50_ms', 2)} | "
            f"{_fig(c1, 'p99_ms', 2)} | {_fig(c50, 'workflows_per_s')} | "
            f"{_fig(c50, 'steps_per_s')} | {_fig(c50, 'p50_ms', 1)} |"
        )
    return "\n".join(lines)


def ratio_lines(ratios: dict[str, Any]) -> str:
    lines = []
    for name, value in ratios.items():
        if value is None:
            continue
        low, high = value["range"]
        lines.append(f"- {name}: {value['median']:.3f} ({low:.3f}..{high:.3f})")
    return "\n".join(lines)
