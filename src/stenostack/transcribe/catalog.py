"""What ``stenostack models`` lists: the models this installation can serve, or a running
server's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from stenostack.models.families import bundled_models
from stenostack.models.sources import DEFAULT_ALIASES, OPENAI_DEFAULT_MODEL


def local_rows() -> list[tuple[str, str, str]]:
    """Each bundled model with its family, then each alias with what it stands for."""
    rows = [(name, family.name, "") for name, (family, _) in sorted(bundled_models().items())]
    for alias, target in DEFAULT_ALIASES.items():
        note = f"alias of {target}"
        if alias == OPENAI_DEFAULT_MODEL:
            note += "; the default"
        rows.append((alias, "", note))
    return rows


def server_rows(cards: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """A server's ``/v1/models`` cards: the name, the model it is (an alias's target) and
    whether it is ready."""
    rows = []
    for card in cards:
        name = str(card.get("id", ""))
        root = str(card.get("root") or name)
        notes = [] if root == name else [f"alias of {root}"]
        if card.get("ready") is False:
            notes.append("loading")
        capabilities = card.get("capabilities")
        if isinstance(capabilities, dict) and isinstance(capabilities.get("languages"), list):
            count = len(capabilities["languages"])
            notes.append(f"{count} language{'s' if count != 1 else ''}")
            if capabilities.get("translation"):
                notes.append("translates")
        rows.append((name, root, ", ".join(notes)))
    return rows


def table(header: tuple[str, str, str], rows: Sequence[tuple[str, str, str]]) -> str:
    """Plain columns, padded to their widest entry."""
    lines = [header, *rows]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        + "\n"
        for line in lines
    )
