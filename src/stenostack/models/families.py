"""Model families as plug-ins: each is found through a Python entry point.

A family says how to recognise its files and how to load them. The built-in families
(Whisper on CTranslate2, Moonshine on ONNX Runtime) register exactly as a third party's
package would, in its ``pyproject.toml``::

    [project.entry-points."stenostack.model_families"]
    my-family = "my_package.family:FAMILY"

where ``FAMILY`` is a :class:`ModelFamily`. ``docs/adding-a-model-family.md`` walks
through writing one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from stenostack.models.base import ModelFactory

log = logging.getLogger(__name__)

#: The entry point group families register in.
ENTRY_POINT_GROUP = "stenostack.model_families"


@dataclass(frozen=True)
class ModelFamily:
    """One family of models: how its files are recognised, found and loaded."""

    name: str  # unique, e.g. "whisper-ct2"
    load: ModelFactory
    # Whether a directory holds this family's files (cheap: names, not contents).
    recognises: Callable[[Path], bool]
    # What a directory of this family holds, for the error when none recognises one.
    files_description: str
    # Bundled models: public name -> the function that finds (or assembles) its directory,
    # raising ModelSourceError (models/sources.py) when its package is missing.
    bundled: Mapping[str, Callable[[], Path]] = field(default_factory=dict)
    # Fetches a model by hub id into a local directory (None: this family cannot).
    download: Callable[[str], Path] | None = None


class FamilyError(Exception):
    """A registered family could not be loaded or clashes with another."""


@functools.cache
def model_families() -> tuple[ModelFamily, ...]:
    """Every registered family, built-in ones first, then the rest by name."""
    found: dict[str, ModelFamily] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=_builtin_first):
        try:
            family = entry.load()
        except Exception as exc:
            raise FamilyError(
                f"The model family '{entry.name}' ({entry.value}) could not be loaded: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(family, ModelFamily):
            raise FamilyError(
                f"The entry point '{entry.name}' ({entry.value}) in '{ENTRY_POINT_GROUP}' is "
                f"not a ModelFamily but {type(family).__name__}."
            )
        if family.name in found:
            raise FamilyError(f"Two model families are named '{family.name}'.")
        found[family.name] = family
    if not found:
        raise FamilyError(
            f"No model family is registered under '{ENTRY_POINT_GROUP}': stenostack's own "
            "package metadata is missing; reinstall it (pip install -e .)."
        )
    return tuple(found.values())


def _builtin_first(entry: object) -> tuple[bool, str]:
    value = str(getattr(entry, "value", ""))
    return (not value.startswith("stenostack."), str(getattr(entry, "name", "")))


def family_named(name: str) -> ModelFamily:
    for family in model_families():
        if family.name == name:
            return family
    raise FamilyError(f"No model family is named '{name}'.")


def bundled_models() -> dict[str, tuple[ModelFamily, Callable[[], Path]]]:
    """Every family's bundled models by public name."""
    return {
        name: (family, find) for family in model_families() for name, find in family.bundled.items()
    }
