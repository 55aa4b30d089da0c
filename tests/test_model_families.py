"""Model families as plug-ins: a family in another package is found through its entry point.

The third-party package here is real packaging metadata (a ``.dist-info`` with an
``entry_points.txt``) on the server's ``PYTHONPATH``, as ``pip install`` would leave it.
Its family is small on purpose: it recognises its own directory layout (a marker file and
the weights in a subdirectory, which Whisper's family does not recognise) and loads the
weights with Whisper's loader, so the test needs no second set of weights.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stenostack.models.sources import resolve_model_dir
from tests.servers import engine_server, openai_client
from tests.speech import compose, wav_bytes
from tests.texts import COFFEE_ORDER
from tests.wer import word_error_rate

FAMILY_MODULE = '''
"""A toy model family shipped by a third party."""

import os
from pathlib import Path

from stenostack.models.families import ModelFamily
from stenostack.models.whisper.family import WHISPER_FAMILY


def recognises(path: Path) -> bool:
    return (path / "toy-family.txt").is_file()


def load(model_dir, placement, cpu_threads, decoding):
    return WHISPER_FAMILY.load(model_dir / "weights", placement, cpu_threads, decoding)


def bundled_toy() -> Path:
    return Path(os.environ["TOY_MODEL_DIR"])


FAMILY = ModelFamily(
    name="toy-whisper",
    load=load,
    recognises=recognises,
    files_description="a toy directory (toy-family.txt and weights/)",
    bundled={"toy-bundled": bundled_toy},
)
'''


def install_plugin(root: Path, module: str, entry_point: str) -> Path:
    """A package ``toy_family`` with ``module`` as its code and one entry point in
    stenostack's group, installed (as pip would) under ``root``."""
    root.mkdir(parents=True)
    (root / "toy_family.py").write_text(module)
    dist_info = root / "toy_family-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-family\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[stenostack.model_families]\ntoy-whisper = {entry_point}\n"
    )
    return root


def toy_model_dir(root: Path) -> Path:
    """The toy layout: a marker file, and whisper-tiny.en's files under ``weights/``."""
    model_dir = root / "toy-model"
    (model_dir / "weights").mkdir(parents=True)
    (model_dir / "toy-family.txt").write_text("toy\n")
    for file in resolve_model_dir("whisper-tiny.en").iterdir():
        (model_dir / "weights" / file.name).symlink_to(file)
    return model_dir


def plugin_env(root: Path, model_dir: Path) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path, "TOY_MODEL_DIR": str(model_dir)}


def test_a_family_from_another_package_serves_its_bundled_and_directory_models(
    tmp_path: Path,
) -> None:
    root = install_plugin(tmp_path / "site", FAMILY_MODULE, "toy_family:FAMILY")
    model_dir = toy_model_dir(tmp_path)
    recording = compose([0.3, COFFEE_ORDER, 0.3])
    with (
        engine_server(
            "--model",
            "toy-bundled",
            "--model",
            f"toy-dir={model_dir}",
            env=plugin_env(root, model_dir),
        ) as server,
        openai_client(server.url, timeout=120) as client,
    ):
        assert {model.id for model in client.models.list()} >= {"toy-bundled", "toy-dir"}
        for name in ("toy-bundled", "toy-dir"):
            result = client.audio.transcriptions.create(
                model=name, file=("order.wav", wav_bytes(recording.samples))
            )
            assert word_error_rate(recording.text, result.text) <= 0.2, result.text


def serve_fails(tmp_path: Path, module: str, entry_point: str, *models: str) -> str:
    """Start ``stenostack serve`` with the plug-in; it must refuse to start. Its stderr."""
    root = install_plugin(tmp_path / "site", module, entry_point)
    arguments = [arg for model in models for arg in ("--model", model)]
    process = subprocess.run(
        [sys.executable, "-m", "stenostack", "serve", *arguments, "--port", "1"],
        env={**os.environ, **plugin_env(root, tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 2, process.stderr
    return process.stderr


def test_a_plugin_that_is_not_a_family_is_named_in_a_clear_error(tmp_path: Path) -> None:
    stderr = serve_fails(tmp_path, "FAMILY = 'not a family'\n", "toy_family:FAMILY")
    assert "'toy-whisper' (toy_family:FAMILY)" in stderr
    assert "not a ModelFamily but str" in stderr
    assert "Traceback" not in stderr


def test_a_plugin_that_fails_to_import_is_named_in_a_clear_error(tmp_path: Path) -> None:
    stderr = serve_fails(tmp_path, "raise ImportError('needs libtoy')\n", "toy_family:FAMILY")
    assert "model family 'toy-whisper' (toy_family:FAMILY) could not be loaded" in stderr
    assert "needs libtoy" in stderr


def test_a_family_may_not_take_a_built_in_family_s_name(tmp_path: Path) -> None:
    clash = FAMILY_MODULE.replace('name="toy-whisper"', 'name="whisper-ct2"')
    stderr = serve_fails(tmp_path, clash, "toy_family:FAMILY")
    assert "Two model families are named 'whisper-ct2'" in stderr


@pytest.mark.parametrize("layout", ["empty", "weights only"])
def test_a_directory_no_family_recognises_says_what_each_expects(
    tmp_path: Path, layout: str
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    if layout == "weights only":
        (model_dir / "config.json").write_text("{}")
    stderr = serve_fails(tmp_path, FAMILY_MODULE, "toy_family:FAMILY", str(model_dir))
    assert f"'{model_dir}' holds no model this server can load" in stderr
    assert "a CTranslate2 Whisper directory (model.bin, config.json, tokenizer.json)" in stderr
    assert "a toy directory (toy-family.txt and weights/)" in stderr


def test_every_built_in_family_registers_through_the_entry_point_group() -> None:
    code = textwrap.dedent(
        """
        from importlib.metadata import entry_points
        print(sorted(e.name for e in entry_points(group="stenostack.model_families")))
        """
    )
    names = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'whisper-ct2'" in names and "'moonshine-onnx'" in names
