"""The flags that say where and how a model runs, shared by ``serve`` and ``transcribe``."""

from __future__ import annotations

import argparse

from stenostack.config import EngineSettings
from stenostack.models.registry import DEFAULT_BEAM_SIZE


def add_model_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, threads_help: str
) -> None:
    """``--device``, ``--compute-type``, ``--cpu-threads`` and ``--beam-size``."""
    defaults = EngineSettings()
    parser.add_argument("--device", default=defaults.device, choices=["auto", "cpu", "cuda"])
    parser.add_argument(
        "--compute-type",
        default=defaults.compute_type,
        help="CTranslate2 precision: auto (float16 on CUDA, int8 on CPU), int8, float16, ...",
    )
    parser.add_argument("--cpu-threads", type=int, default=defaults.cpu_threads, help=threads_help)
    parser.add_argument(
        "--beam-size",
        type=int,
        default=defaults.beam_size,
        help="Beam size at temperature 0 (1: greedy). Default: "
        + ", ".join(f"{size} on {device}" for device, size in DEFAULT_BEAM_SIZE.items())
        + ".",
    )
