"""The ``stenostack`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stenostack import __version__
from stenostack.config import EngineSettings
from stenostack.http.auth import read_key_file
from stenostack.http.connection_flags import CONNECTION_SETTINGS, add_connection_arguments
from stenostack.http.logs import configure_logging
from stenostack.http.server import process_connection_limits, run_server
from stenostack.model_flags import add_model_flags
from stenostack.models.download import add_download_command, run_download
from stenostack.router.cli import add_router_command, run_router
from stenostack.transcribe.arguments import add_models_command, add_transcribe_command
from stenostack.transcribe.command import run_models, run_transcribe


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
        help="A model to serve: a bundled name (whisper-base, whisper-tiny.en, "
        "moonshine-base, or one a family plug-in bundles), a local model directory (a "
        "CTranslate2 Whisper or a Moonshine ONNX one) or a Hugging Face hub id (Whisper); "
        "repeat for more. Default: the bundled models, with whisper-1 as an alias of "
        "whisper-base.",
    )
    add_model_flags(
        serve,
        threads_help="Threads per model on CPU (0: one per core), split into two lanes that "
        "each run a batch once there are at least two.",
    )
    serve.add_argument(
        "--best-of",
        type=int,
        default=defaults.best_of,
        help="Hypotheses sampled at each temperature of the fallback; the likeliest is kept.",
    )
    serve.add_argument(
        "--patience",
        type=float,
        default=defaults.patience,
        help="Beam search stops once beam-size x patience hypotheses have finished.",
    )
    serve.add_argument(
        "--length-penalty",
        type=float,
        default=defaults.length_penalty,
        help="Hypotheses are ranked by log probability / length ** this (0: not by length).",
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
        "--api-key",
        dest="api_keys",
        action="append",
        default=[],
        help="A key callers must send as 'Authorization: Bearer KEY'; repeat for more. Keys "
        "from --api-key-file and env STENOSTACK_API_KEYS (comma-separated) count too. "
        "/health and /ready stay open.",
    )
    serve.add_argument(
        "--api-key-file", type=Path, metavar="PATH", help="A file of API keys, one per line."
    )
    serve.add_argument(
        "--realtime-max-sessions",
        type=int,
        default=defaults.realtime_max_sessions,
        help="Realtime sessions open at once; more get an error event and close 1013.",
    )
    serve.add_argument(
        "--realtime-idle-timeout-s",
        type=float,
        default=defaults.realtime_idle_timeout_s,
        help="Close a realtime session whose client sends nothing this long (and waits for "
        "no transcription).",
    )
    serve.add_argument(
        "--realtime-max-message-bytes",
        type=int,
        default=defaults.realtime_max_message_bytes,
        help="The largest realtime WebSocket message; a larger one closes the session (1009).",
    )
    serve.add_argument(
        "--realtime-max-pending-event-bytes",
        type=int,
        default=defaults.realtime_max_pending_event_bytes,
        help="Events that may wait for a realtime client that is not reading; past it the "
        "session is closed (1008).",
    )
    serve.add_argument(
        "--diarization",
        action=argparse.BooleanOptionalAction,
        default=defaults.diarization,
        help="Load the speaker diarization model (response_format=diarized_json); "
        "--no-diarization saves its memory and answers diarization requests with a 400.",
    )
    serve.add_argument(
        "--diarization-dir",
        type=Path,
        default=defaults.diarization_dir,
        metavar="DIR",
        help="A directory holding the diarization model's files (segmentation-3.0.onnx and "
        "Resemblyzer's pretrained.pt). Default: the pinned packages' files.",
    )
    serve.add_argument(
        "--diarization-threads",
        type=int,
        default=defaults.diarization_threads,
        help="Threads of the diarization model's segmentation calls.",
    )
    serve.add_argument(
        "--log-level",
        default=defaults.log_level,
        choices=["critical", "error", "warning", "info", "debug"],
    )
    add_connection_arguments(serve, with_defaults=True)
    add_router_command(commands)
    add_download_command(commands)
    add_transcribe_command(commands)
    add_models_command(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "router":
        return run_router(args)
    if args.command == "download-model":
        return run_download(args)
    if args.command == "transcribe":
        return run_transcribe(args)
    if args.command == "models":
        return run_models(args)
    settings = EngineSettings(
        host=args.host,
        port=args.port,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
        beam_size=args.beam_size,
        best_of=args.best_of,
        patience=args.patience,
        length_penalty=args.length_penalty,
        max_upload_mb=args.max_upload_mb,
        max_audio_seconds=args.max_audio_seconds,
        max_queued_audio_seconds=args.max_queued_audio_seconds,
        batch_gather_ms=args.batch_gather_ms,
        realtime_max_sessions=args.realtime_max_sessions,
        realtime_idle_timeout_s=args.realtime_idle_timeout_s,
        realtime_max_message_bytes=args.realtime_max_message_bytes,
        realtime_max_pending_event_bytes=args.realtime_max_pending_event_bytes,
        diarization=args.diarization,
        diarization_dir=args.diarization_dir,
        diarization_threads=args.diarization_threads,
        log_level=args.log_level,
        **{name: getattr(args, name) for name in CONNECTION_SETTINGS},
    )
    if args.models:
        settings.models = args.models
    settings.api_keys += args.api_keys
    if args.api_key_file is not None:
        try:
            from_file = read_key_file(args.api_key_file)
        except OSError as exc:
            print(f"stenostack: error: cannot read --api-key-file: {exc}", file=sys.stderr)
            return 2
        if not from_file:  # an empty file must not leave the engine open by mistake
            print(f"stenostack: error: no keys in {args.api_key_file}", file=sys.stderr)
            return 2
        settings.api_keys += from_file
    configure_logging(settings.log_level)
    return serve(settings)


def serve(settings: EngineSettings) -> int:
    from stenostack.api.app import create_app
    from stenostack.serving import SetupError, build_registry, prepare_process

    prepare_process()

    try:
        registry = build_registry(settings)
    except SetupError as exc:
        print(f"stenostack: error: {exc}", file=sys.stderr)
        return 2
    app = create_app(settings, registry)
    # A connection's descriptors at worst: its socket and its spooled upload.
    limits = process_connection_limits(settings, files_per_connection=2)
    run_server(
        app,
        limits,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_max_size=settings.realtime_max_message_bytes,
    )
    if registry.load_error:
        print(
            f"stenostack: error: loading the models failed: {registry.load_error}", file=sys.stderr
        )
        return 1
    return 0
