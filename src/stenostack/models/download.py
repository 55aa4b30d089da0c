"""``stenostack download-model``: fetch a CTranslate2 model from the hub into a directory.

The Helm chart's init container runs it to fill a model volume that engines then mount
read-only; the engine never touches the network. A directory that already holds a model is
left as it is, so every pod after the first starts without downloading.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stenostack.models.sources import ModelSourceError
from stenostack.models.whisper.family import check_model_dir

# The files a CTranslate2 Whisper model needs (the ones faster-whisper downloads).
MODEL_FILES = [
    "config.json",
    "preprocessor_config.json",
    "model.bin",
    "tokenizer.json",
    "vocabulary.*",
]


def add_download_command(commands: Any) -> None:
    download = commands.add_parser(
        "download-model",
        help="Download a CTranslate2 model from the Hugging Face Hub into a directory.",
    )
    download.add_argument("repo_id", metavar="REPO_ID", help="e.g. Systran/faster-whisper-small")
    download.add_argument("--output-dir", type=Path, required=True, metavar="DIR")
    download.add_argument("--revision", default=None, help="A branch, tag or commit.")
    download.add_argument(
        "--force", action="store_true", help="Download even if DIR already holds a model."
    )


def download_model(repo_id: str, output_dir: Path, revision: str | None, force: bool) -> Path:
    """The model directory; raises :class:`ModelSourceError` with a clear message."""
    if not force:
        try:
            return check_model_dir(output_dir)
        except ModelSourceError:
            pass  # not there yet
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            repo_id,
            revision=revision,
            local_dir=output_dir,
            allow_patterns=MODEL_FILES,
        )
    except Exception as exc:
        raise ModelSourceError(
            f"Could not download '{repo_id}' from the Hugging Face Hub "
            f"({type(exc).__name__}: {exc}). This needs network access to the hub (and "
            f"HF_HUB_OFFLINE unset or 0); on an offline cluster, copy the model directory "
            f"into the volume instead."
        ) from exc
    return check_model_dir(output_dir)


def run_download(args: argparse.Namespace) -> int:
    try:
        directory = download_model(args.repo_id, args.output_dir, args.revision, args.force)
    except ModelSourceError as exc:
        print(f"stenostack download-model: error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.repo_id}: model ready in {directory}")
    return 0
