"""How a benchmark ends: its targets, each met or missed, and an exit status to match."""

from __future__ import annotations


def report_targets(targets: list[tuple[str, bool]]) -> int:
    """Print each target as met or MISSED; 0 if every one was met, else 1."""
    print("\nTargets")
    for name, met in targets:
        print(f"- {name}: {'met' if met else 'MISSED'}")
    return 0 if all(met for _, met in targets) else 1
