"""Live sessions and uploaded files share the model fairly, and realtime memory goes back.

Real engines on loopback with whisper-tiny.en and real speech: many live sessions flooding
turns beside a short file, many long files beside a live turn, and big realtime appends
followed by the engine's resident memory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import suppress

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_async

from stenostack.engine.fair_share import FairShare
from tests.realtime_client import realtime_session
from tests.servers import (
    RunningServer,
    engine_server,
    metric,
    openai_client,
    resident_mb,
    wait_until,
)
from tests.speech import compose, raw_pcm, wav_bytes
from tests.texts import COFFEE_ORDER, MEETING_MOVED, STORY

MODEL = "whisper-tiny.en"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FLOODING_SESSIONS = 64  # the engine's default session cap
LONG_FILES = 8
TURN_COUNT_SPAN_S = 12.0


@pytest.fixture(scope="module")
def engine() -> Iterator[RunningServer]:
    """An engine with default limits, its VAD model loaded by a first session."""
    with engine_server("--model", MODEL) as server:
        with realtime_session(server.url) as session:
            session.recv()
        yield server


def ws_url(server: RunningServer) -> str:
    return server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


def append_message(pcm: bytes) -> str:
    """One input_audio_buffer.append holding all of ``pcm`` (24 kHz PCM16)."""
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    )


async def note_completions(connection: ClientConnection, completed: list[float]) -> None:
    """Read every event; note when each turn's transcript completes."""
    async for raw in connection:
        if json.loads(raw)["type"] == COMPLETED:
            completed.append(time.monotonic())


async def flooding_session(server: RunningServer, message: str, completed: list[float]) -> None:
    """A session that appends all its speech at once (a flood of turns, which server VAD
    commits one by one) and then reads its transcripts until cancelled."""
    async with connect_async(ws_url(server), open_timeout=60, max_size=None) as connection:
        await connection.recv()  # session.created
        await connection.send(message)
        await note_completions(connection, completed)


async def live_turn_seconds(server: RunningServer) -> float:
    """One spoken turn appended at once: seconds until its transcript is complete."""
    pcm = raw_pcm(compose([0.3, COFFEE_ORDER, 1.2]).samples)
    async with connect_async(ws_url(server), open_timeout=60) as connection:
        await connection.recv()  # session.created
        started = time.monotonic()
        await connection.send(append_message(pcm))
        async with asyncio.timeout(120):
            while True:
                event = json.loads(await connection.recv())
                if event["type"] == COMPLETED:
                    assert "coffee" in event["transcript"].lower()
                    return time.monotonic() - started


def models_requests(server: RunningServer) -> float:
    """Requests the model holds (running or waiting for their first step)."""
    return metric(server, "stenostack_requests_running") + metric(
        server, "stenostack_requests_waiting"
    )


def test_the_class_that_had_least_model_time_leads() -> None:
    """Live work alone for 10 s banks the idle file class no credit: once a file arrives the
    two alternate, and a shared batch is charged to each class by its steps."""
    share = FairShare(["file", "live"])
    for _ in range(10):
        assert share.leader(["live"]) == "live"
        share.charge(1.0, ["live"])
    leaders = []
    for _ in range(6):
        leaders.append(share.leader(["live", "file"]))  # live's step is the older
        share.charge(1.0, [leaders[-1]])
    assert leaders == ["file", "live"] * 3
    share.charge(4.0, ["live", "live", "live", "file"])  # live +3 s, file +1 s
    assert [share.leader(["live", "file"]) for _ in range(2)] == ["file", "file"]


def test_a_file_beside_flooding_live_sessions_takes_about_its_solo_time(
    engine: RunningServer,
) -> None:
    """64 sessions each append eight sentences (46 s) at once, so every one always has a
    turn in the model; a 4 s file sent meanwhile leads a batch in turn with them instead of
    waiting behind all 64 at each step. (The old scheduler, oldest step first: 0.16 s
    alone, 6.6 s beside them.)"""
    clip = wav_bytes(compose([0.3, MEETING_MOVED, 0.3]).samples)
    client = openai_client(engine.url, timeout=120)

    def transcribe() -> float:
        started = time.monotonic()
        text = client.audio.transcriptions.create(model=MODEL, file=("clip.wav", clip)).text
        assert "thursday" in text.lower()
        return time.monotonic() - started

    alone = min(transcribe() for _ in range(2))
    spoken = [part for sentence in STORY[:8] for part in (sentence, 0.8)]
    flood = append_message(raw_pcm(compose([0.3, *spoken]).samples))
    completed: list[float] = []

    async def run() -> tuple[float, float, int]:
        sessions = [
            asyncio.create_task(flooding_session(engine, flood, completed))
            for _ in range(FLOODING_SESSIONS)
        ]
        try:
            async with asyncio.timeout(240):
                while len(completed) < FLOODING_SESSIONS:  # every session's turns flowing
                    await asyncio.sleep(0.1)
                counted_from, already = time.monotonic(), len(completed)
                loaded = await asyncio.to_thread(transcribe)
                # Turns per second over the same span, before and after, and longer than the file.
                await asyncio.sleep(max(counted_from + TURN_COUNT_SPAN_S - time.monotonic(), 0))
                turns = len(completed) - already
                return loaded, turns / (time.monotonic() - counted_from), len(completed)
        finally:
            for session in sessions:
                session.cancel()
            await asyncio.gather(*sessions, return_exceptions=True)

    loaded, turns_per_second, turns = asyncio.run(run())
    print(
        f"{FLOODING_SESSIONS} flooding sessions: file {alone:.2f} s alone, {loaded:.2f} s "
        f"beside them; {turns_per_second:.1f} turns/s ({turns} turns)"
    )
    assert loaded < alone + 2  # the old scheduler: 3.6-6.6 s more
    assert turns_per_second > 1  # the flood is still served while the file runs


def test_live_turns_complete_beside_long_files(engine: RunningServer) -> None:
    """Eight 85 s files are in the model at once; a live turn spoken meanwhile leads a batch
    in turn with them, so it takes about its solo time, not eight file steps per step of
    its own. (The old scheduler: 0.14 s alone, 7-9 s beside them.)"""
    story = wav_bytes(compose([part for sentence in STORY for part in (sentence, 0.5)]).samples)
    alone = min(asyncio.run(live_turn_seconds(engine)) for _ in range(2))

    async def run() -> list[float]:
        async with httpx.AsyncClient(timeout=300) as http:
            files = [
                asyncio.create_task(
                    http.post(
                        f"{engine.url}/v1/audio/transcriptions",
                        data={"model": MODEL},
                        files={"file": ("story.wav", story)},
                    )
                )
                for _ in range(LONG_FILES)
            ]
            try:
                await asyncio.to_thread(
                    wait_until,
                    lambda: models_requests(engine) >= LONG_FILES,
                    120,
                    "every file in the model",
                )
                turns = [await live_turn_seconds(engine) for _ in range(3)]
                assert not any(request.done() for request in files), "no file may end first"
                return turns
            finally:
                for request in files:  # hanging up cancels each file's remaining work
                    request.cancel()
                await asyncio.gather(*files, return_exceptions=True)

    loaded = asyncio.run(asyncio.wait_for(run(), timeout=300))
    print(
        f"a live turn: {alone:.2f} s alone, "
        f"{', '.join(f'{s:.2f}' for s in loaded)} s beside {LONG_FILES} long files"
    )
    assert max(loaded) < alone + 3
    wait_until(lambda: models_requests(engine) == 0, 60, "the files to be cancelled")


def test_memory_returns_after_big_realtime_appends() -> None:
    """Ten sessions each append a 15.9 MiB message (331 s of 24 kHz audio) at once and then
    close: the engine's resident memory comes back to within 100 MB of idle. (The old code
    stayed ~320 MB above idle.)"""
    message = append_message(bytes(int(15.9 * 2**20) * 3 // 4 - 300))
    with engine_server("--model", MODEL) as server:
        with realtime_session(server.url) as session:  # load the VAD model: part of idle
            session.recv()
            session.append(raw_pcm(compose([0.3, COFFEE_ORDER, 0.5]).samples))
            session.send("input_audio_buffer.clear")
            session.until("input_audio_buffer.cleared")
        time.sleep(1)
        idle = resident_mb(server.process.pid)

        def one_session(cleared: list[bool]) -> None:
            with realtime_session(server.url, max_size=None) as session:
                session.recv()
                session.connection.send(message)
                session.send("input_audio_buffer.clear")
                session.until("input_audio_buffer.cleared", timeout=120)
                cleared.append(True)

        cleared: list[bool] = []
        threads = [threading.Thread(target=one_session, args=(cleared,)) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        assert cleared == [True] * 10
        after = resident_mb(server.process.pid)
        with suppress(AssertionError):  # the figure is printed either way
            wait_until(lambda: resident_mb(server.process.pid) < idle + 100, 20, "memory")
        settled = resident_mb(server.process.pid)
        print(
            f"10 x 15.9 MiB appends: idle {idle:.0f} MB, {after - idle:+.0f} MB after them, "
            f"{settled - idle:+.0f} MB once settled"
        )
        assert settled < idle + 100
