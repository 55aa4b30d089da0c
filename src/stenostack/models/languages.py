"""ISO 639-1 codes and the lowercase English names OpenAI reports in ``verbose_json``."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

WHISPER_LANGUAGES: Mapping[str, str] = MappingProxyType(
    {
        "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian",
        "ko": "korean", "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish",
        "pl": "polish", "ca": "catalan", "nl": "dutch", "ar": "arabic", "sv": "swedish",
        "it": "italian", "id": "indonesian", "hi": "hindi", "fi": "finnish",
        "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
        "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil",
        "no": "norwegian", "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian",
        "lt": "lithuanian", "la": "latin", "mi": "maori", "ml": "malayalam", "cy": "welsh",
        "sk": "slovak", "te": "telugu", "fa": "persian", "lv": "latvian", "bn": "bengali",
        "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
        "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque",
        "is": "icelandic", "hy": "armenian", "ne": "nepali", "mn": "mongolian",
        "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
        "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer",
        "sn": "shona", "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan",
        "ka": "georgian", "be": "belarusian", "tg": "tajik", "sd": "sindhi",
        "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao", "uz": "uzbek",
        "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen",
        "nn": "nynorsk", "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish",
        "my": "myanmar", "bo": "tibetan", "tl": "tagalog", "mg": "malagasy", "as": "assamese",
        "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa", "ba": "bashkir",
        "jw": "javanese", "su": "sundanese", "yue": "cantonese",
    }
)  # fmt: skip

# Languages written without spaces between words: transcript pieces join without a separator.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue"})


def language_name(code: str) -> str:
    """The name OpenAI uses for a language code (``"en"`` -> ``"english"``)."""
    return WHISPER_LANGUAGES.get(code, code)
