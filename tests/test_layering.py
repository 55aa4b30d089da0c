"""ARCHITECTURE.md's "who may import whom", checked on the source: a module may import only
the packages its layer names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent.parent / "src" / "stenostack"

# The table in ARCHITECTURE.md; top-level modules (cli.py, config.py, ...) are not layers.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "audio": {"errors"},
    "models": {"audio", "errors"},
    "engine": {"models", "audio", "errors", "metrics"},
    "api": {
        *("engine", "models", "audio", "http", "playground", "errors", "metrics", "config"),
        "serving",
    },
    "serving": {"engine", "models", "metrics", "config"},
    "http": {"errors"},
    "playground": set(),
    "router": {"http", "playground", "errors"},
    "transcribe": {
        *("api", "serving", "engine", "models", "audio", "errors", "config"),
        "model_flags",  # the placement flags it shares with serve
    },
}


def _imported_layers(path: Path) -> set[str]:
    """The stenostack packages (or top-level modules) a file imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "stenostack" and len(parts) > 1:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_what_it_may(layer: str) -> None:
    root = SOURCE / layer
    files = sorted(root.rglob("*.py")) if root.is_dir() else [SOURCE / f"{layer}.py"]
    assert files, layer
    wrong = {
        f"{path.relative_to(SOURCE)} imports {other}"
        for path in files
        for other in _imported_layers(path) - MAY_IMPORT[layer] - {layer, "__init__"}
    }
    assert not wrong, sorted(wrong)
