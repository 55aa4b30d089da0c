"""The ``stenostack`` command."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from stenostack import __version__
from stenostack.config import EngineSettings
from stenostack.http.logs import configure_logging
from stenostack.models.registry import ModelRegistry, ModelSpec, choose_placement
from stenostack.models.sources import ModelSourceError
from stenostack.router.cli import add_router_command, run_router


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stenostack", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stenostack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="Run the OpenAI-compatible speech-to-text engine.")
    defaults = EngineSettings()
    serve.add_argument("--host", default=defaults.host)
    serve.add_argument("--port", type=int, default=defaults.port)
    serve.add_argument(
        "--model",
        dest="models",
        action="append",
        metavar="[NAME=]SOURCE",
        help="A model to serve: a bundled name (whisper-base, whisper-tiny.en), a local "
        "CTranslate2 directory or a Hugging Face hub id; repeat for more. Default: the "
        "bundled models, with whisper-1 as an alias of whisper-base.",
    )
    serve.add_argument("--device", default=defaults.device, choices=["auto", "cpu", "cuda"])
    serve.add_argument(
        "--compute-type",
        default=defaults.compute_type,
        help="CTranslate2 precision: auto (float16 on CUDA, int8 on CPU), int8, float16, ...",
    )
    serve.add_argument(
        "--cpu-threads",
        type=int,
        default=defaults.cpu_threads,
        help="Threads per model on CPU (0: one per core).",
    )
    serve.add_argument(
        "--max-upload-mb",
        type=float,
        default=defaults.max_upload_mb,
        help="Largest accepted upload, in MB (env STENOSTACK_MAX_UPLOAD_MB).",
    )
    serve.add_argument(
        "--max-audio-seconds",
        type=float,
        default=defaults.max_audio_seconds,
        help="Longest accepted audio (env STENOSTACK_MAX_AUDIO_SECONDS).",
    )
    serve.add_argument(
        "--max-queued-audio-seconds",
        type=float,
        default=defaults.max_queued_audio_seconds,
        help="Backpressure: audio seconds a model may have queued or running before new "
        "requests get 429 with Retry-After (env STENOSTACK_MAX_QUEUED_AUDIO_SECONDS).",
    )
    serve.add_argument(
        "--batch-gather-ms",
        type=float,
        default=defaults.batch_gather_ms,
        help="Longest a batch waits for requests still being decoded to join it; a lone "
        "request never waits.",
    )
    serve.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=["critical", "error", "warning", "info", "debug"],
    )
    add_router_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "router":
        return run_router(args)
    settings = EngineSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        max_upload_mb=args.max_upload_mb,
        max_audio_seconds=args.max_audio_seconds,
        max_queued_audio_seconds=args.max_queued_audio_seconds,
        batch_gather_ms=args.batch_gather_ms,
        log_level=args.log_level,
    )
    if args.models:
        settings.models = args.models
    configure_logging(settings.log_level)
    return serve(settings)


def serve(settings: EngineSettings) -> int:
    from stenostack.api.app import create_app

    specs = [ModelSpec.parse(argument) for argument in settings.models]
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        print(f"stenostack: error: two models share a name: {names}", file=sys.stderr)
        return 2
    registry = ModelRegistry(
        specs,
        settings.aliases,
        choose_placement(settings.device, settings.compute_type),
        settings.cpu_threads,
    )
    try:
        registry.resolve()
    except ModelSourceError as exc:
        print(f"stenostack: error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, registry)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    if registry.load_error:
        print(
            f"stenostack: error: loading the models failed: {registry.load_error}", file=sys.stderr
        )
        return 1
    return 0
