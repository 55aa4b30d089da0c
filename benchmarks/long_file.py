"""One long file at a time: the engine against faster-whisper, sequential and batched.

Run from the repository root::

    python -m benchmarks.long_file [--models whisper-base whisper-tiny.en] [--minutes 10]
        [--languages en es] [--threads 2] [--batch-sizes 4 8 16] [--previous REV] [--runs 2]

For each model and language it makes one long file of read speech with pauses (espeak-ng,
noise under it) and transcribes it, one request at a time, with:

- ``engine``: ``stenostack serve`` from this checkout (greedy, ``--cpu-threads``), over HTTP;
- ``previous``: the same from git revision ``--previous`` (a worktree of it), to show what a
  change gained; left out without ``--previous``;
- ``fw sequential``: ``faster_whisper.WhisperModel.transcribe``, greedy, conditioned on
  previous text, with the engine's file VAD (what ``tests.faster_whisper_baseline`` runs);
- ``fw batched bN``: ``faster_whisper.BatchedInferencePipeline`` at each batch size (its own
  defaults otherwise: its VAD cut at 30 s, no timestamps), the strongest of them marked.

Every contender gets the same model directory, int8, the same threads. It prints seconds
(best of ``--runs``), speed as audio seconds per second, WER, and the engine's speed as a
ratio to each other contender.
"""

from __future__ import annotations

import argparse
import io
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from faster_whisper import BatchedInferencePipeline, WhisperModel
from tests.faster_whisper_baseline import faster_whisper_text
from tests.servers import engine_server, openai_client, server_process
from tests.speech import compose, wav_bytes
from tests.texts import STORY, VOICES
from tests.wer import error_rate

from benchmarks.workloads import SENTENCES
from stenostack.models.languages import NO_SPACE_LANGUAGES
from stenostack.models.sources import resolve_model_dir

# Spanish read speech for a long file (espeak-ng reads Spanish well enough to tell contenders
# apart; see benchmarks.accuracy_vs_faster_whisper).
SPANISH = [
    "Había una vez un pequeño pueblo al borde de un gran bosque.",
    "Cada mañana el panadero abría su tienda y vendía pan fresco a los vecinos.",
    "Los niños caminaban a la escuela junto al río y contaban los barcos.",
    "Por la tarde los campesinos llevaban verduras al mercado de la plaza.",
    "Un día llegó un forastero con una caja de madera llena de mapas antiguos.",
    "Pidió al alcalde una habitación y una comida caliente para la noche.",
    "A la mañana siguiente extendió los mapas sobre la mesa de la posada.",
    "Mostraban un camino a través de las montañas que nadie había visto nunca.",
    "Una joven llamada Lucía se ofreció a guiarlo hasta el primer valle.",
    "Prepararon comida, ropa de abrigo y una linterna para el viaje.",
    "Después de tres días llegaron a un lago tan azul como el cielo de verano.",
    "En la otra orilla se levantaba una torre de piedra gris y cristal.",
    "Dentro de la torre encontraron una biblioteca con miles de libros.",
    "Lucía leyó las historias en voz alta mientras el forastero dibujaba un mapa nuevo.",
    "Cuando volvieron a casa, todo el pueblo se reunió para escuchar el relato.",
    "Desde aquel día la biblioteca está abierta para todos los que la visitan.",
    "El tren hacia el aeropuerto sale cada quince minutos desde la estación central.",
    "Mi hermana trabaja en un hospital y vuelve a casa muy tarde por la noche.",
    "El próximo lunes empieza el curso de cocina en el centro cultural.",
    "Las tiendas del centro cierran a las ocho, pero los restaurantes siguen abiertos.",
]
TEXTS = {"en": STORY + SENTENCES, "es": SPANISH}
PAUSES = (0.4, 0.6, 0.9, 1.3, 3.5)
# ``python -c`` this, SRC, ARGS...: the command line of the stenostack found in SRC.
RUN_FROM_SOURCES = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); "
    "from stenostack.cli import main; sys.exit(main())"
)


@dataclass
class LongFile:
    language: str
    text: str
    wav: bytes
    seconds: float


def long_file(language: str, minutes: float, seed: int = 7) -> LongFile:
    """Sentences of ``language`` in shuffled order with pauses, noise under them."""
    rng = random.Random(seed)
    parts: list[str | float] = [0.5]
    spoken = 0.0
    while spoken < minutes * 60:
        sentence = rng.choice(TEXTS[language])
        pause = rng.choice(PAUSES)
        parts += [sentence, pause]
        spoken += len(sentence) / 14 + pause
    recording = compose(parts, voice=VOICES[language], noise_level=0.002)
    return LongFile(language, recording.text, wav_bytes(recording.samples), recording.duration)


Transcribe = Callable[[LongFile], str]


@dataclass
class Result:
    seconds: float
    wer: float
    text: str


def measure(transcribe: Transcribe, audio: LongFile, runs: int) -> Result:
    best, text = float("inf"), ""
    for _ in range(runs):
        started = time.perf_counter()
        text = transcribe(audio)
        best = min(best, time.perf_counter() - started)
    return Result(best, error_rate(audio.language, [audio.text], [text]), text)


@contextmanager
def engine(model: str, threads: int, checkout: Path | None = None) -> Iterator[Transcribe]:
    """``stenostack serve`` (from ``checkout``'s sources, if given), greedy, warmed up."""
    arguments = ["--model", model, "--cpu-threads", str(threads), "--beam-size", "1",
                 "--max-audio-seconds", "7200", "--max-queued-audio-seconds", "14400"]  # fmt: skip
    if checkout is None:
        context = engine_server(*arguments)
    else:
        command = [sys.executable, "-c", RUN_FROM_SOURCES, str(checkout / "src"),
                   "serve", "--log-level", "warning", *arguments]  # fmt: skip
        context = server_process(command)
    with context as server:
        client = openai_client(server.url, timeout=3600)

        def transcribe(audio: LongFile) -> str:
            return client.audio.transcriptions.create(
                model=model,
                file=("long.wav", audio.wav),
                language=audio.language,
                temperature=0.0,
            ).text

        transcribe(long_file("en", 0.2))  # warm up
        yield transcribe


@contextmanager
def previous_engine(model: str, threads: int, revision: str) -> Iterator[Transcribe]:
    """The engine as it was at git ``revision``."""
    with worktree(revision) as checkout, engine(model, threads, checkout) as transcribe:
        yield transcribe


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="stenostack-previous-") as directory:
        path = Path(directory) / "checkout"
        subprocess.run(["git", "worktree", "add", "--detach", str(path), revision],
                       check=True, capture_output=True)  # fmt: skip
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], check=False)


def fw_sequential(model: WhisperModel) -> Transcribe:
    def transcribe(audio: LongFile) -> str:
        return faster_whisper_text(model, audio.wav, audio.language)

    return transcribe


def fw_batched(model: WhisperModel, batch_size: int) -> Transcribe:
    pipeline = BatchedInferencePipeline(model)

    def transcribe(audio: LongFile) -> str:
        segments, _info = pipeline.transcribe(
            io.BytesIO(audio.wav), language=audio.language, beam_size=1, batch_size=batch_size
        )
        separator = "" if audio.language in NO_SPACE_LANGUAGES else " "
        return separator.join(segment.text.strip() for segment in segments)

    return transcribe


def contenders(
    name: str, threads: int, previous: str | None, batch_sizes: list[int]
) -> Iterator[tuple[str, AbstractContextManager[Transcribe]]]:
    """Each contender's label and what starts it."""
    yield "engine", engine(name, threads)
    if previous:
        yield f"previous ({previous})", previous_engine(name, threads, previous)
    baseline = WhisperModel(
        str(resolve_model_dir(name)), device="cpu", compute_type="int8", cpu_threads=threads
    )
    yield "fw sequential", nullcontext(fw_sequential(baseline))
    for size in batch_sizes:
        yield f"fw batched b{size}", nullcontext(fw_batched(baseline, size))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["whisper-base", "whisper-tiny.en"])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--languages", nargs="+", default=["en", "es"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[4, 8, 16])
    parser.add_argument("--previous", help="a git revision to measure the engine from, too")
    parser.add_argument("--runs", type=int, default=2, help="the best of this many, each")
    parser.add_argument("--show", action="store_true", help="print every transcript")
    args = parser.parse_args()
    files = {language: long_file(language, args.minutes) for language in args.languages}
    for audio in files.values():
        print(f"{audio.language}: {audio.seconds / 60:.1f} minutes, {len(audio.text.split())} "
              f"words; int8 on CPU, {args.threads} threads, greedy, one request at a time, "
              f"best of {args.runs}")  # fmt: skip
    for name in args.models:
        # An English-only model (whisper-tiny.en and the like) hears English only.
        mine = {lang: audio for lang, audio in files.items() if "." not in name or lang == "en"}
        results: dict[str, dict[str, Result]] = {lang: {} for lang in mine}
        for label, contender in contenders(name, args.threads, args.previous, args.batch_sizes):
            with contender as transcribe:
                for language, audio in mine.items():
                    results[language][label] = measure(transcribe, audio, args.runs)
        for language, audio in mine.items():
            report(name, audio, results[language], args.show)


def report(name: str, audio: LongFile, results: dict[str, Result], show: bool) -> None:
    batched = {label: r for label, r in results.items() if label.startswith("fw batched")}
    strongest = min(batched, key=lambda label: batched[label].seconds)
    ours = results["engine"]
    print(f"\n{name}, {audio.language}, {audio.seconds / 60:.1f} min")
    print(f"  {'':<24} {'seconds':>8} {'audio s/s':>10} {'WER':>7} {'engine is':>10}")
    for label, result in results.items():
        mark = " (strongest batched)" if label == strongest else ""
        ratio = result.seconds / ours.seconds
        print(f"  {label:<24} {result.seconds:8.1f} {audio.seconds / result.seconds:10.1f} "
              f"{100 * result.wer:6.2f}% {ratio:9.2f}x{mark}")  # fmt: skip
        if show:
            print(f"    {result.text}")


if __name__ == "__main__":
    main()
