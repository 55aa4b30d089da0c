"""The browser playground at ``/``, driven in a real (headless) Chromium against real servers.

One engine (whisper-tiny.en, with Moonshine and whisper-base beside it, behind an API key
so every test also goes through the key path) and one browser serve the whole module; the
browser's fake microphone plays a known speech file each time capture starts. Each page
must make no request beyond its server and throw no script error.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, FileChooser, Page

from stenostack.api.formats import speaker_text, to_srt, to_vtt
from stenostack.models.base import Segment
from tests.browser import chromium, chromium_missing, fake_microphone
from tests.faulty_model import failing_engine
from tests.realtime_client import realtime_session
from tests.servers import RunningServer, engine_server, router_server
from tests.speech import Recording, compose, wav_bytes
from tests.texts import COFFEE_ORDER, MEETING_MOVED, SPANISH, STORY
from tests.wer import normalise, word_error_rate

MODEL = "whisper-tiny.en"
MOONSHINE = "moonshine-base"
MULTILINGUAL = "whisper-base"
KEY = "playground-test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
README_SCREENSHOT = Path(__file__).parent.parent / "docs" / "images" / "playground.png"
# How long a page may take to show a short file's transcript (a few seconds of audio).
SHORT_WAIT_MS = 60_000
SPANISH_IN_ENGLISH = (
    "Good morning. Today the weather is very good and we are going to walk in the park."
)


# -- servers, speech and the browser ----------------------------------------------------


@pytest.fixture(scope="module")
def keyed_engine() -> Iterator[RunningServer]:
    """tiny.en (first: the page's default), Moonshine (no word times) and whisper-base (it
    translates)."""
    models = (MODEL, MOONSHINE, MULTILINGUAL)
    with engine_server(*(f"--model={model}" for model in models), "--api-key", KEY) as server:
        yield server


@dataclass
class SpeechFile:
    path: Path
    recording: Recording

    @property
    def text(self) -> str:
        return self.recording.text

    def bytes(self) -> bytes:
        return self.path.read_bytes()


def speech_file(
    folder: Path, name: str, parts: list[str | float], rate: int = 16_000, voice: str = "en-us"
) -> SpeechFile:
    recording = compose(parts, voice=voice, noise_level=0.002)
    path = folder / name
    path.write_bytes(wav_bytes(recording.samples, extra=("-b", "16", "-r", str(rate))))
    return SpeechFile(path, recording)


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="module")
def story(speech_dir: Path) -> SpeechFile:
    """Four sentences, about 25 s: short work for tiny.en, long enough to play through."""
    parts: list[str | float] = [0.5]
    for sentence in STORY[:4]:
        parts += [sentence, 0.8]
    return speech_file(speech_dir, "story.wav", parts)


@pytest.fixture(scope="module")
def long_story(speech_dir: Path) -> SpeechFile:
    """About 2.5 minutes: several windows, so the stream has segments well before its end."""
    parts: list[str | float] = [0.5]
    for index in range(24):
        parts += [STORY[index % len(STORY)], (0.6, 1.0, 3.5)[index % 3]]
    return speech_file(speech_dir, "long-story.wav", parts)


@pytest.fixture(scope="module")
def coffee(speech_dir: Path) -> SpeechFile:
    return speech_file(speech_dir, "coffee.wav", [0.3, COFFEE_ORDER, 0.3])


@pytest.fixture(scope="module")
def microphone_speech(speech_dir: Path) -> SpeechFile:
    """Two turns with a pause between, for the fake microphone to say once."""
    return speech_file(speech_dir, "microphone.wav", [0.8, MEETING_MOVED, 1.5, COFFEE_ORDER, 2.0])


@pytest.fixture(scope="module")
def browser(microphone_speech: SpeechFile) -> Iterator[Browser]:
    missing = chromium_missing()
    if missing is not None:  # a failure, not a skip: `make test` installs it
        pytest.fail(missing)
    with chromium(*fake_microphone(microphone_speech.path)) as launched:
        yield launched


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@dataclass
class OpenedPage:
    context: BrowserContext
    page: Page
    server: str
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Pages:
    """Opens the playground in fresh browser contexts (no shared storage), recording every
    request each page makes and every script error it throws."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.opened: list[OpenedPage] = []

    def open(self, server: str, *, key: str | None = KEY, **context_options: Any) -> Page:
        """The page at ``server``, its models loaded; with ``key`` remembered beforehand."""
        context = self.browser.new_context(accept_downloads=True, **context_options)
        if key is not None:
            context.add_init_script(f"localStorage.setItem('stenostack.apiKey', {json.dumps(key)})")
        page = context.new_page()
        page.set_default_timeout(SHORT_WAIT_MS)
        opened = OpenedPage(context, page, server)
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("websocket", lambda socket: opened.requests.append(socket.url))
        page.on("pageerror", lambda error: opened.errors.append(str(error)))
        self.opened.append(opened)
        page.goto(server)
        if key is not None:
            wait_for_models(page)
        return page

    def requests(self, page: Page) -> list[str]:
        return next(opened.requests for opened in self.opened if opened.page is page)

    def close(self) -> None:
        for opened in self.opened:
            opened.context.close()
        for opened in self.opened:
            assert not opened.errors, f"script errors on {opened.server}: {opened.errors}"
            foreign = [url for url in opened.requests if not from_server(url, opened.server)]
            assert not foreign, f"requests beyond {opened.server}: {foreign}"


@pytest.fixture
def pages(browser: Browser) -> Iterator[Pages]:
    opener = Pages(browser)
    try:
        yield opener
    finally:
        opener.close()


def from_server(url: str, server: str) -> bool:
    """Whether ``url`` is the server's (over HTTP or WebSocket) or the page's own data."""
    socket = server.replace("http://", "ws://", 1)
    return url.startswith((f"{server}/", f"{socket}/", "blob:", "data:")) or url == server


# -- what the page shows ----------------------------------------------------------------


def wait_for_models(page: Page) -> None:
    page.wait_for_function("document.getElementById('model').options.length > 0")


def transcribe(page: Page, speech: SpeechFile, timeout_ms: float = SHORT_WAIT_MS) -> None:
    """Upload ``speech`` through the file input and wait for its whole transcript."""
    page.set_input_files("#file", speech.path)
    wait_until_finished(page, timeout_ms)
    assert state(page) == "done", page.inner_text("#alert")


def wait_until_finished(page: Page, timeout_ms: float = SHORT_WAIT_MS) -> None:
    page.wait_for_function(
        "['done', 'failed'].includes(document.getElementById('transcript').dataset.state)",
        timeout=timeout_ms,
    )


def state(page: Page) -> str:
    value: str = page.eval_on_selector("#transcript", "element => element.dataset.state")
    return value


def transcript_text(page: Page) -> str:
    texts: list[str] = page.eval_on_selector_all(
        "#transcript .segment .text", "elements => elements.map(e => e.textContent)"
    )
    return " ".join(texts)


@dataclass
class ShownWord:
    text: str
    start: float
    end: float


def shown_words(page: Page) -> list[ShownWord]:
    words: list[dict[str, Any]] = page.eval_on_selector_all(
        "#transcript .word",
        "elements => elements.map(e => ({text: e.textContent, start: +e.dataset.start,"
        " end: +e.dataset.end}))",
    )
    return [ShownWord(**word) for word in words]


def highlighted_start(page: Page) -> float | None:
    start: float | None = page.evaluate(
        "() => { const word = document.querySelector('#transcript .word.current');"
        " return word ? +word.dataset.start : null; }"
    )
    return start


def player_time(page: Page) -> float:
    seconds: float = page.evaluate("document.getElementById('player').currentTime")
    return seconds


def seek_player(page: Page, seconds: float) -> None:
    page.evaluate(
        """async (seconds) => {
            const player = document.getElementById('player');
            const seeked = new Promise((resolve) =>
                player.addEventListener('seeked', resolve, { once: true }));
            player.currentTime = seconds;
            await seeked;
        }""",
        seconds,
    )


def outline(page: Page) -> str:
    """The focused element's outline style ("none" where focus would not show)."""
    style: str = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    return style


def alert_text(page: Page) -> str:
    page.wait_for_selector("#alert:not([hidden])")
    return page.inner_text("#alert")


def api_post(
    server: str,
    speech: SpeechFile,
    data: dict[str, Any],
    endpoint: str = "transcriptions",
    model: str = MODEL,
) -> httpx.Response:
    return httpx.post(
        f"{server}/v1/audio/{endpoint}",
        data={"model": model, **data},
        files={"file": (speech.path.name, speech.bytes(), "audio/wav")},
        headers=AUTH,
        timeout=120,
    )


def download(page: Page, extension: str) -> tuple[str, bytes]:
    page.select_option("#download-format", extension)
    with page.expect_download() as started:
        page.click("#download")
    saved = started.value
    return saved.suggested_filename, Path(saved.path()).read_bytes()


# -- the tests --------------------------------------------------------------------------


def test_upload_streams_segments_then_shows_every_word(
    pages: Pages, keyed_engine: RunningServer, long_story: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    # Note each change to the transcript as it happens: when, in which state, how many
    # segments were shown.
    page.evaluate(
        """() => {
            const transcript = document.getElementById('transcript');
            window.seen = [];
            new MutationObserver(() => window.seen.push({
                at: performance.now(),
                state: transcript.dataset.state,
                segments: transcript.querySelectorAll('.segment').length,
            })).observe(transcript, { childList: true, attributes: true });
        }"""
    )
    transcribe(page, long_story, timeout_ms=180_000)

    assert word_error_rate(long_story.text, transcript_text(page)) <= 0.3, transcript_text(page)
    words = shown_words(page)
    assert len(words) >= 0.8 * len(normalise(long_story.text).split())
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))

    seen: list[dict[str, Any]] = page.evaluate("window.seen")
    first = next(change for change in seen if change["segments"])
    done = next(change for change in seen if change["state"] == "done")
    # The first segment was shown while the stream went on, well before its end, and
    # more came after it.
    assert first["state"] == "streaming", seen
    assert done["at"] - first["at"] >= 250, (first, done)
    assert first["segments"] < done["segments"], (first, done)
    assert page.is_visible("#player")
    assert "Done" in page.inner_text("#status")


def test_drop_a_file_on_the_drop_zone(
    pages: Pages, keyed_engine: RunningServer, coffee: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    page.evaluate(
        """async ([name, bytes]) => {
            const file = new File([new Uint8Array(bytes)], name, { type: 'audio/wav' });
            const transfer = new DataTransfer();
            transfer.items.add(file);
            const zone = document.getElementById('drop-zone');
            for (const kind of ['dragover', 'drop']) {
                zone.dispatchEvent(new DragEvent(kind, { dataTransfer: transfer, bubbles: true }));
            }
        }""",
        [coffee.path.name, list(coffee.bytes())],
    )
    wait_until_finished(page)
    assert state(page) == "done", page.inner_text("#alert")
    assert word_error_rate(coffee.text, transcript_text(page)) <= 0.3


def test_playing_highlights_the_word_said_and_a_click_seeks(
    pages: Pages, keyed_engine: RunningServer, story: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    transcribe(page, story)
    words = shown_words(page)
    assert len(words) >= 30

    seek_player(page, 3.0)
    expected = max(word.start for word in words if word.start <= 3.0)
    assert highlighted_start(page) == expected

    # Playing moves the highlight forward with the audio.
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("document.getElementById('player').currentTime > 5", timeout=15_000)
    page.evaluate("document.getElementById('player').pause()")
    now = player_time(page)
    moved = highlighted_start(page)
    assert moved is not None and expected < moved <= now + 0.05, (expected, moved, now)

    # Clicking a later word plays from its start, and highlights it.
    later = words[-6]
    page.locator("#transcript .word").nth(len(words) - 6).click()
    page.evaluate("document.getElementById('player').pause()")
    assert later.start <= player_time(page) < later.start + 1.0
    assert highlighted_start(page) == later.start


def test_downloads_are_the_apis_own_formats(
    pages: Pages, keyed_engine: RunningServer, story: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    assert page.is_disabled("#download")  # nothing to download yet
    transcribe(page, story)

    for extension, response_format in (("srt", "srt"), ("vtt", "vtt"), ("txt", "text")):
        name, saved = download(page, extension)
        assert name == f"story.{extension}"
        expected = api_post(keyed_engine.url, story, {"response_format": response_format})
        assert expected.status_code == 200, expected.text
        assert saved == expected.content, (extension, saved, expected.content)

    # The JSON is the verbose_json the API gives for the same request (not streamed).
    name, saved = download(page, "json")
    assert name == "story.json"
    granularities = {"timestamp_granularities[]": ["word", "segment"]}
    expected = api_post(
        keyed_engine.url, story, {"response_format": "verbose_json", **granularities}
    )
    assert json.loads(saved) == expected.json()


def test_models_without_word_times_and_translations(
    pages: Pages, keyed_engine: RunningServer, coffee: SpeechFile, speech_dir: Path
) -> None:
    """Moonshine gives no word times (and refuses to be asked for them), nor does a
    translation: each segment is then one unit to highlight and click."""
    spanish = speech_file(speech_dir, "spanish.wav", [0.3, SPANISH, 0.3], voice="es")
    page = pages.open(keyed_engine.url)
    for model, task, speech, expected in (
        (MOONSHINE, "transcribe", coffee, COFFEE_ORDER),
        (MULTILINGUAL, "translate", spanish, SPANISH_IN_ENGLISH),
    ):
        page.select_option("#model", model)
        page.select_option("#task", task)
        transcribe(page, speech)
        assert page.is_hidden("#alert")
        assert word_error_rate(expected, transcript_text(page)) <= 0.4, transcript_text(page)
        units = page.locator("#transcript .word")
        assert units.count() == page.locator("#transcript .word.whole").count() >= 1
        _, saved = download(page, "srt")
        endpoint = "translations" if task == "translate" else "transcriptions"
        expected_srt = api_post(
            keyed_engine.url, speech, {"response_format": "srt"}, endpoint=endpoint, model=model
        )
        assert saved == expected_srt.content, (saved, expected_srt.content)
        units.first.click()
        page.evaluate("document.getElementById('player').pause()")
        start = float(units.first.get_attribute("data-start") or "nan")
        assert start <= player_time(page) < start + 1.0
    # A multilingual model offers its languages.
    assert page.evaluate("document.getElementById('language').options.length") > 50


def test_microphone_turns_appear_as_each_completes(
    pages: Pages, keyed_engine: RunningServer
) -> None:
    page = pages.open(keyed_engine.url)
    page.click("#record")
    page.wait_for_selector("#turns .turn.final", state="attached", timeout=60_000)
    # The first turn is final while the second is still being spoken.
    finals = page.locator("#turns .turn.final")
    assert finals.count() == 1
    assert page.get_attribute("#record", "aria-pressed") == "true"
    page.wait_for_function(
        "document.querySelectorAll('#turns .turn.final').length >= 2", timeout=60_000
    )
    turns = finals.all_inner_texts()
    assert len(turns) == 2, turns
    assert word_error_rate(MEETING_MOVED, turns[0]) <= 0.35, turns
    assert word_error_rate(COFFEE_ORDER, turns[1]) <= 0.35, turns

    page.click("#record")
    page.wait_for_function(
        "document.querySelector('#record .label').textContent === 'Record'", timeout=40_000
    )
    assert page.get_attribute("#record", "aria-pressed") == "false"
    assert page.is_hidden("#alert")


def test_the_microphone_on_an_insecure_page_says_why(
    pages: Pages, keyed_engine: RunningServer
) -> None:
    """A browser gives the microphone only to HTTPS or this machine's own pages; the page
    says so instead of failing on an undefined ``navigator.mediaDevices``."""
    page = pages.open(keyed_engine.url)
    page.evaluate("Object.defineProperty(window, 'isSecureContext', {value: false})")
    page.click("#record")
    assert "secure page" in alert_text(page)
    page.wait_for_function("document.querySelector('#record .label').textContent === 'Record'")
    assert page.get_attribute("#record", "aria-pressed") == "false"


def test_stopping_mid_turn_transcribes_what_was_said(
    pages: Pages, keyed_engine: RunningServer
) -> None:
    page = pages.open(keyed_engine.url)
    page.click("#record")  # the fake microphone starts its file again
    page.wait_for_selector("#turns .turn", state="attached")  # speech started
    page.wait_for_timeout(1500)  # about half of the first sentence
    page.click("#record")
    page.wait_for_function(
        "document.querySelector('#record .label').textContent === 'Record'", timeout=40_000
    )
    # The turn was committed on stop, not dropped, and holds what was said by then.
    turns = page.locator("#turns .turn.final").all_inner_texts()
    assert len(turns) == 1, turns
    # (Words, not a word error rate: tiny.en hears a sentence cut short one way or another
    # from the very same audio.)
    said = normalise(turns[0]).split()
    sentence = normalise(MEETING_MOVED).split()
    assert len([word for word in said if word in sentence]) >= 0.5 * len(said) >= 1, turns
    assert "afternoon" not in said, turns  # the sentence's end, not yet said when stopped
    assert page.is_hidden("#alert")


def test_subtitles_built_in_the_page_follow_the_servers_rules(
    pages: Pages, keyed_engine: RunningServer
) -> None:
    """Cases a real transcript rarely has: half milliseconds (Python rounds them to even),
    hours, a negative time, "-->", markup, edge whitespace Python and JavaScript disagree
    on, empty segments and speakers."""
    texts = [" Hello &amp; <b>world</b> --> on", "\ufeff odd space\x1c", "   ", "", " A > B < C"]
    segments = [
        Segment(index, 0, start, start + 1.0015 * index, texts[index % len(texts)], [], 0.0,
                0.0, 0.0, 0.0)
        for index, start in enumerate([-0.2, *(k / 2000 for k in range(1, 30)), 7261.9995])
    ]  # fmt: skip
    with_speakers = [
        dataclasses.replace(segment, speaker=("A", "B", "x<&>y")[segment.id % 3])
        for segment in segments
    ]
    page = pages.open(keyed_engine.url)
    for cases in (segments, with_speakers):
        wire = [
            {key: value for key, value in dataclasses.asdict(segment).items() if key != "words"}
            | ({"speaker": segment.speaker} if segment.speaker else {})
            for segment in cases
        ]
        for segment in wire:
            if segment["speaker"] is None:
                del segment["speaker"]
        built: list[str] = page.evaluate(
            """async ([segments, text]) => {
                const formats = await import('/playground/formats.js');
                const verbose = { text, segments };
                return [formats.toSrt(segments), formats.toVtt(segments), formats.toText(verbose)];
            }""",
            [wire, "the text"],
        )
        speakers = cases[0].speaker is not None
        text = speaker_text(cases) if speakers else "the text\n"
        assert built == [to_srt(cases), to_vtt(cases), text]


def test_api_errors_are_shown_as_the_api_words_them(
    pages: Pages, keyed_engine: RunningServer, story: SpeechFile, speech_dir: Path
) -> None:
    page = pages.open(keyed_engine.url)

    # Refused before any event: a file that is not audio.
    not_audio = speech_dir / "notes.txt"
    not_audio.write_text("These are notes, not audio.\n" * 20)
    page.set_input_files("#file", not_audio)
    wait_until_finished(page)
    assert state(page) == "failed"
    refused = httpx.post(
        f"{keyed_engine.url}/v1/audio/transcriptions",
        data={"model": MODEL, "response_format": "verbose_json", "stream": "true"},
        files={"file": ("notes.txt", not_audio.read_bytes())},
        headers=AUTH,
    )
    assert refused.status_code == 400
    assert alert_text(page) == refused.json()["error"]["message"]

    # A translation with an English-only model.
    page.select_option("#task", "translate")
    page.set_input_files("#file", story.path)
    wait_until_finished(page)
    message = api_post(keyed_engine.url, story, {}, endpoint="translations").json()["error"]
    assert alert_text(page) == message["message"], message

    # A live session's error event: a language the model does not take.
    page.evaluate(
        """() => {
            const language = document.getElementById('language');
            language.append(new Option('Klingon', 'tlh'));
            language.value = 'tlh';
        }"""
    )
    page.click("#record")
    page.wait_for_function("document.getElementById('alert').textContent.includes('tlh')")
    with realtime_session(keyed_engine.url, additional_headers=AUTH) as session:
        session.until("session.created")
        session.send(
            "session.update",
            session={
                "type": "transcription",
                "audio": {"input": {"transcription": {"model": MODEL, "language": "tlh"}}},
            },
        )
        error = session.until("error")[-1]["error"]
    assert alert_text(page) == error["message"]
    assert page.inner_text("#record .label") == "Record"


def test_an_error_in_the_middle_of_a_stream_is_shown(pages: Pages, long_story: SpeechFile) -> None:
    with failing_engine() as url:  # every second decoding batch fails
        with httpx.stream(
            "POST",
            f"{url}/v1/audio/transcriptions",
            data={"model": MODEL, "response_format": "verbose_json", "stream": "true"},
            files={"file": ("story.wav", long_story.bytes())},
            timeout=120,
        ) as response:
            frames = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        error = json.loads(frames[-1])["error"]

        page = pages.open(url, key=None)
        wait_for_models(page)
        page.set_input_files("#file", long_story.path)
        wait_until_finished(page, timeout_ms=120_000)
        assert state(page) == "failed"
        assert alert_text(page) == error["message"]


def test_a_key_is_asked_for_when_the_server_needs_one(
    pages: Pages, keyed_engine: RunningServer, coffee: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url, key=None)
    refused = httpx.get(f"{keyed_engine.url}/v1/models")
    assert refused.status_code == 401
    message = alert_text(page)
    assert message.startswith(refused.json()["error"]["message"]) and "API key" in message
    assert page.evaluate("document.activeElement.id") == "api-key"
    assert page.locator("#model option").count() == 0

    page.fill("#api-key", KEY)
    page.press("#api-key", "Enter")
    wait_for_models(page)
    assert page.is_hidden("#alert")
    served = httpx.get(f"{keyed_engine.url}/v1/models", headers=AUTH).json()["data"]
    assert page.locator("#model option").all_inner_texts() == [model["id"] for model in served]
    assert page.input_value("#model") == MODEL
    transcribe(page, coffee)
    assert word_error_rate(coffee.text, transcript_text(page)) <= 0.3
    # Not ticked "remember": the key is not kept.
    assert page.evaluate("localStorage.getItem('stenostack.apiKey')") is None

    page.check("#remember-key")
    page.reload()
    wait_for_models(page)
    assert page.input_value("#api-key") == KEY


def test_the_router_serves_the_page_and_relays_the_microphone(
    pages: Pages, keyed_engine: RunningServer, coffee: SpeechFile
) -> None:
    with router_server("--backend", keyed_engine.url, "--backend-api-key", KEY) as router:
        response = httpx.get(f"{router.url}/")
        assert response.status_code == 200 and "stenostack" in response.text
        page = pages.open(router.url, key=None)  # the router itself takes no key
        wait_for_models(page)
        transcribe(page, coffee)
        assert word_error_rate(coffee.text, transcript_text(page)) <= 0.3

        # The microphone too: the router picks the backend by the model in the URL.
        page.click("#record")
        page.wait_for_selector("#turns .turn.final", state="attached", timeout=60_000)
        first = page.locator("#turns .turn.final").all_inner_texts()[0]
        assert word_error_rate(MEETING_MOVED, first) <= 0.35, first
        page.click("#record")
        page.wait_for_function(
            "document.querySelector('#record .label').textContent === 'Record'", timeout=40_000
        )
        assert page.is_hidden("#alert")


def test_phone_sized_and_dark(
    pages: Pages, keyed_engine: RunningServer, story: SpeechFile, screenshots: Path
) -> None:
    for name, width, height, scheme in (
        ("phone-dark", 390, 844, "dark"),
        ("phone-light", 390, 844, "light"),
        ("desktop", 1100, 720, "light"),
    ):
        viewport = {"width": width, "height": height}
        page = pages.open(keyed_engine.url, viewport=viewport, color_scheme=scheme)
        transcribe(page, story)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, name
        for selector in ("#api-key", "#model", "#language", "#task", "#drop-zone", "#record",
                         "#download", "#player", "#transcript .word"):  # fmt: skip
            box = page.locator(selector).first.bounding_box()
            assert box is not None, (name, selector)
            assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, selector, box)
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        shade = sum(int(part) for part in re.findall(r"\d+", background)[:3]) / 3
        assert (shade < 60) if scheme == "dark" else (shade > 200), (name, background)
        seek_player(page, 7.0)  # a word highlighted, as while playing
        page.screenshot(path=screenshots / f"{name}.png", full_page=True)
    if os.environ.get("STENOSTACK_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshots / "desktop.png", README_SCREENSHOT)


def test_keyboard_reaches_every_control_and_plays_from_a_word(
    pages: Pages, keyed_engine: RunningServer, story: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    # Listening for file choosers from the start: with network events on (the request
    # record), expect_file_chooser's interception came too late about half the time.
    choosers: list[FileChooser] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    order = []
    outlines = {}
    for _ in range(12):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.id")
        order.append(focused)
        outlines[focused] = outline(page)
    for control in ("api-key", "model", "language", "task", "drop-zone", "record"):
        assert control in order, order
        assert outlines[control] != "none", (control, outlines)  # focus shows
    assert order.index("model") < order.index("drop-zone") < order.index("record"), order

    # The drop zone opens the file picker from the keyboard.
    page.focus("#drop-zone")
    page.keyboard.press("Enter")
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(50)
    assert len(choosers) == 1
    choosers[0].set_files(story.path)
    wait_until_finished(page)
    assert state(page) == "done"

    # The words are one tab stop after the download button; arrows move, Enter plays.
    page.focus("#download")
    for _ in range(15):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('word')"):
            break
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.evaluate("document.getElementById('player').pause()")
    word = shown_words(page)[10]
    assert page.evaluate("document.activeElement.textContent") == word.text
    assert outline(page) != "none"
    assert word.start <= player_time(page) < word.start + 1.0
    # The words are a single tab stop: Tab leaves them.
    page.keyboard.press("Tab")
    assert not page.evaluate("document.activeElement.classList.contains('word')")


def test_the_page_asks_nothing_of_other_hosts(
    pages: Pages, keyed_engine: RunningServer, coffee: SpeechFile
) -> None:
    page = pages.open(keyed_engine.url)
    transcribe(page, coffee)
    download(page, "srt")
    requests = pages.requests(page)
    # Every file of the page came from the server (the fixture checks no other host).
    for path in ("/", "/playground/app.js", "/playground/style.css", "/v1/models",
                 "/v1/audio/transcriptions"):  # fmt: skip
        assert f"{keyed_engine.url}{path}" in requests, (path, requests)
    assert all(from_server(url, keyed_engine.url) for url in requests), requests
