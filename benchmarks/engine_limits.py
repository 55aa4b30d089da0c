"""How the engine bounds hostile work: decode bombs beside a short clip, a 429 on a full
queue, a looping prompt, and memory after a burst and after bombs.

Run from the repository root: ``python -m benchmarks.engine_limits``. Each figure is one
engine serving whisper-tiny.en on a loopback port; the bombs are Opus files of 10 hours
(``tests/bombs.py``), some in Ogg (whose header declares the length), some in a live WebM
(which declares none).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tests.bombs import opus_bomb
from tests.servers import RunningServer, engine_server, resident_mb
from tests.speech import compose, wav_bytes
from tests.texts import STORY
from tests.uploads import timed_transcription

MODEL = "whisper-tiny.en"
BOMB_SECONDS = 36_000
LOOPING_PROMPT = " ".join(["hello"] * 200)


def transcribe(
    server: RunningServer, name: str, data: bytes, timeout: float = 600, **fields: str
) -> tuple[int, str, float]:
    """POST one file; return the status, the error code or text, and the seconds taken."""
    response, elapsed = timed_transcription(server, MODEL, name, data, timeout=timeout, **fields)
    body = response.json()
    said = body["error"]["code"] if response.status_code >= 400 else body["text"]
    return response.status_code, said, elapsed


def bombs_beside_clip(clip: bytes, declares_length: bool) -> None:
    bomb = opus_bomb(BOMB_SECONDS, declares_length=declares_length)
    kind = "Ogg, length declared" if declares_length else "live WebM, no length"
    with engine_server("--model", MODEL) as server:
        _, _, alone = transcribe(server, "clip.wav", clip)
        _, _, alone = transcribe(server, "clip.wav", clip)
        with ThreadPoolExecutor(5) as pool:
            bombs = [pool.submit(transcribe, server, "bomb.webm", bomb) for _ in range(4)]
            time.sleep(0.5)
            status, _, beside = transcribe(server, "clip.wav", clip)
            answers = [future.result() for future in bombs]
        print(
            f"4 bombs of {BOMB_SECONDS / 3600:.0f} h ({kind}, {len(bomb) / 1e6:.1f} MB each): "
            f"3 s clip alone {alone:.2f} s, beside the bombs {beside:.2f} s ({status}); bombs "
            + ", ".join(f"{s} {code} in {t:.2f} s" for s, code, t in answers)
        )


def full_queue_429(long_speech: bytes) -> None:
    bomb = opus_bomb(3600)
    with engine_server("--model", MODEL, "--max-queued-audio-seconds", "60") as server:
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(transcribe, server, "long.wav", long_speech)
            time.sleep(2.0)  # decoded and admitted, old code or new
            status, code, elapsed = transcribe(server, "hour.ogg", bomb)
            busy.result()
        print(f"full queue: a 1 h Ogg file answered {status} {code} in {elapsed * 1000:.0f} ms")


def looping_prompt(clip: bytes) -> None:
    with engine_server("--model", MODEL) as server:
        transcribe(server, "clip.wav", clip)
        _, text, plain = transcribe(server, "clip.wav", clip)
        _, looped, prompted = transcribe(server, "clip.wav", clip, prompt=LOOPING_PROMPT)
        print(
            f"2 s clip: {plain:.2f} s without a prompt ({text!r}); with a 200-word repetitive "
            f"prompt {prompted:.2f} s ({looped!r})"
        )


def memory(speech: bytes) -> None:
    bomb = opus_bomb(BOMB_SECONDS, declares_length=False)
    with engine_server("--model", MODEL) as server:
        transcribe(server, "warm.wav", speech)
        time.sleep(2)
        idle = resident_mb(server.process.pid)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: transcribe(server, "s.wav", speech), range(16)))
        time.sleep(5)
        burst = resident_mb(server.process.pid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: transcribe(server, "b.webm", bomb), range(4)))
        time.sleep(5)
        bombs = resident_mb(server.process.pid)
        print(
            f"engine RSS idle {idle:.0f} MB; 5 s after a burst of 16 requests "
            f"{burst:.0f} MB (+{burst - idle:.0f}); 5 s after 4 bombs {bombs:.0f} MB "
            f"(+{bombs - idle:.0f})"
        )


def main() -> None:
    clip = wav_bytes(compose([0.3, "Please send the report to the office by Friday.", 0.3]).samples)
    short = wav_bytes(compose([0.2, "Hello there, how are you?", 0.2]).samples)
    story = compose([part for sentence in STORY for part in (sentence, 0.7)])
    long_speech = wav_bytes(np.tile(story.samples, 6))
    bombs_beside_clip(clip, declares_length=True)
    bombs_beside_clip(clip, declares_length=False)
    full_queue_429(long_speech)
    looping_prompt(short)
    memory(wav_bytes(story.samples[: 30 * 16_000]))


if __name__ == "__main__":
    main()
