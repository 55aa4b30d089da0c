"""Language detection, explicit languages and translation into English, on the base model."""

from __future__ import annotations

import pytest
from openai import BadRequestError, OpenAI

from tests.speech import speech_file
from tests.texts import SPANISH
from tests.wer import word_error_rate

GERMAN = "Guten Morgen. Heute ist das Wetter sehr schön und wir gehen in den Park."
FRENCH = "Bonjour. Je voudrais un café, s'il vous plaît."


@pytest.mark.parametrize(
    ("text", "voice", "language"), [(SPANISH, "es", "spanish"), (GERMAN, "de", "german")]
)
def test_detects_the_language(client: OpenAI, text: str, voice: str, language: str) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-1", file=speech_file(text, voice), response_format="verbose_json"
    )
    assert result.language == language
    # Transcribed in its own language, not translated; base hears espeak's German compound
    # "Wetter sehr schön" as one made-up word, and a second slip costs another 7 points.
    assert word_error_rate(text, result.text) <= 0.5, result.text


def test_explicit_language(client: OpenAI) -> None:
    result = client.audio.transcriptions.create(
        model="whisper-base", file=speech_file(SPANISH, "es"), language="es",
        response_format="verbose_json",
    )  # fmt: skip
    assert result.language == "spanish"
    assert word_error_rate(SPANISH, result.text) <= 0.2, result.text


def test_translates_french_to_english(client: OpenAI) -> None:
    result = client.audio.translations.create(model="whisper-1", file=speech_file(FRENCH, "fr"))
    words = result.text.lower()
    assert "coffee" in words and "like" in words, result.text
    assert set(result.model_dump(exclude_none=True)) == {"text"}  # translations carry no usage


def test_translation_verbose_json(client: OpenAI) -> None:
    result = client.audio.translations.create(
        model="whisper-1", file=speech_file(SPANISH, "es"), response_format="verbose_json"
    )
    assert result.language == "english"
    assert "park" in result.text.lower() and "morning" in result.text.lower(), result.text
    assert result.segments and result.segments[0].text.strip()
    raw = result.model_dump()
    assert "usage" not in raw and raw.get("task") == "translate"


def test_translation_text_format(client: OpenAI) -> None:
    text = client.audio.translations.create(
        model="whisper-1", file=speech_file(SPANISH, "es"), response_format="text"
    )
    assert isinstance(text, str) and "park" in text.lower()


def test_english_only_model_refuses_translation(client: OpenAI) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.audio.translations.create(model="whisper-tiny.en", file=speech_file(FRENCH, "fr"))
    assert caught.value.param == "model"


@pytest.mark.parametrize(("model", "language"), [("whisper-tiny.en", "fr"), ("whisper-1", "xx")])
def test_unsupported_language(client: OpenAI, model: str, language: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        client.audio.transcriptions.create(
            model=model, file=speech_file(SPANISH, "es"), language=language
        )
    assert caught.value.param == "language"
    assert caught.value.code == "unsupported_language"
