"""The arguments of ``stenostack transcribe`` and ``stenostack models``."""

from __future__ import annotations

import argparse
import os
import textwrap
from pathlib import Path
from typing import Any

from stenostack.model_flags import add_model_flags
from stenostack.models.sources import DEFAULT_ALIASES, OPENAI_DEFAULT_MODEL
from stenostack.transcribe.inputs import MEDIA_EXTENSIONS
from stenostack.transcribe.outputs import OUTPUT_FORMATS

# Keys for --server, in this order, when --api-key is not given.
API_KEY_VARIABLES = ("STENOSTACK_API_KEY", "OPENAI_API_KEY")

_EXTENSIONS_PARAGRAPH = textwrap.fill(
    "Each PATH is a file (tried whatever its extension) or a directory, searched "
    f"recursively for audio and video files ({', '.join(MEDIA_EXTENSIONS)}). Each output "
    "goes next to its input (talk.mp3 -> talk.srt), or with --output-dir into DIR, where a "
    "directory's files keep their layout. An output that exists is kept unless --overwrite.",
    width=88,
)
TRANSCRIBE_DESCRIPTION = f"""\
Transcribe audio and video files into subtitles or text.

{_EXTENSIONS_PARAGRAPH}

Without --server the model runs in this process, exactly as `stenostack serve` runs it;
only the one model asked for is loaded. With --server the files go to a running engine or
router instead, streamed, so progress shows there too. Both write the same files for the
same model and settings.

On a terminal, progress bars show the audio done in the file at hand and in all of them;
otherwise one line is written per file. Exit status: 0 all done (or skipped), 1 some file
failed, 2 nothing could start (no inputs, bad options, model or server unavailable), 130
interrupted (Ctrl-C: the file in progress is abandoned, finished outputs are kept).

examples:
  stenostack transcribe talk.mp3                     # writes talk.srt beside it
  stenostack transcribe recordings/ --format vtt --output-dir subtitles/
  stenostack transcribe interview.m4a --model whisper-tiny.en --format txt
  stenostack transcribe meeting.mp4 --server http://gpu-box:8000 --api-key KEY"""


def add_transcribe_command(commands: Any) -> None:
    parser = commands.add_parser(
        "transcribe",
        help="Transcribe files or directories into subtitles (srt, vtt) or text.",
        description=TRANSCRIBE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or directories")
    default_target = DEFAULT_ALIASES.get(OPENAI_DEFAULT_MODEL, OPENAI_DEFAULT_MODEL)
    parser.add_argument(
        "--model",
        default=OPENAI_DEFAULT_MODEL,
        metavar="NAME",
        help=f"The model: a bundled name (see `stenostack models`), an alias, a local model "
        f"directory or [NAME=]SOURCE as serve takes it; with --server, a name the server "
        f"serves. Default: {OPENAI_DEFAULT_MODEL} (here {default_target}, as serve "
        f"answers a request naming no model); whisper-tiny.en is the fastest, English only.",
    )
    parser.add_argument(
        "--language", metavar="CODE", help="The spoken language (ISO 639-1); default: detect it."
    )
    parser.add_argument(
        "--task",
        choices=["transcribe", "translate"],
        default="transcribe",
        help="transcribe (default), or translate into English (multilingual models).",
    )
    parser.add_argument(
        "--format",
        dest="output_format",
        choices=OUTPUT_FORMATS,
        default="srt",
        help="Output format (default srt); txt is the text, json {'text': ...}, verbose_json "
        "the API's verbose transcript with segment times (written as .json).",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        metavar="DIR",
        help="Write outputs into DIR (mirroring each directory's layout) instead of next to "
        "their inputs.",
    )
    parser.add_argument(
        "--word-timestamps",
        action="store_true",
        help="Time each word too (verbose_json shows them; slower).",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace outputs that exist (default: skip)."
    )
    _add_server_flags(
        parser,
        "A running stenostack engine or router, e.g. http://127.0.0.1:8000, to transcribe "
        "on instead of in this process.",
    )
    local = parser.add_argument_group("in this process (without --server)")
    add_model_flags(local, threads_help="Threads on CPU (0: one per core).")


def add_models_command(commands: Any) -> None:
    parser = commands.add_parser(
        "models",
        help="List the models that can be served (or that a server serves).",
        description="List the bundled models with their family and the aliases, all names "
        "that serve --model and transcribe --model take; with --server, the models a "
        "running engine or router serves (GET /v1/models).",
    )
    _add_server_flags(parser, "A running engine or router.")


def _add_server_flags(parser: argparse.ArgumentParser, server_help: str) -> None:
    parser.add_argument("--server", metavar="URL", help=server_help)
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help="The key for --server (default: env " + " or ".join(API_KEY_VARIABLES) + ").",
    )


def api_key(args: argparse.Namespace) -> str | None:
    """--api-key, or the first of ``API_KEY_VARIABLES`` set."""
    if args.api_key:
        return str(args.api_key)
    for name in API_KEY_VARIABLES:
        if os.environ.get(name):
            return os.environ[name]
    return None


def base_url(url: str) -> str:
    """A server's address as given (``http://host:8000``, with ``/v1`` or not), without
    ``/v1``."""
    url = url.rstrip("/")
    return url.removesuffix("/v1")
