"""How a benchmark reports: percentiles, and its targets, each met or missed, with an exit
status to match."""

from __future__ import annotations


def report_targets(targets: list[tuple[str, bool]]) -> int:
    """Print each target as met or MISSED; 0 if every one was met, else 1."""
    print("\nTargets")
    for name, met in targets:
        print(f"- {name}: {'met' if met else 'MISSED'}")
    return 0 if all(met for _, met in targets) else 1


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]
