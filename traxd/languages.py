"""Pure: the spoken languages Whisper knows, by ISO-639-1 code, and validation of a user's --language."""

from __future__ import annotations

from traxd.errors import UserError

# Whisper's language table (openai/whisper tokenizer.py), restricted to the two-letter ISO-639-1 codes the
# transcription API accepts; Whisper's own "jw" for Javanese is the ISO code "jv".
LANGUAGES: dict[str, str] = {
    "af": "afrikaans", "am": "amharic", "ar": "arabic", "as": "assamese", "az": "azerbaijani", "ba": "bashkir",
    "be": "belarusian", "bg": "bulgarian", "bn": "bengali", "bo": "tibetan", "br": "breton", "bs": "bosnian",
    "ca": "catalan", "cs": "czech", "cy": "welsh", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "et": "estonian", "eu": "basque", "fa": "persian", "fi": "finnish", "fo": "faroese",
    "fr": "french", "gl": "galician", "gu": "gujarati", "ha": "hausa", "he": "hebrew", "hi": "hindi",
    "hr": "croatian", "ht": "haitian creole", "hu": "hungarian", "hy": "armenian", "id": "indonesian",
    "is": "icelandic", "it": "italian", "ja": "japanese", "jv": "javanese", "ka": "georgian", "kk": "kazakh",
    "km": "khmer", "kn": "kannada", "ko": "korean", "la": "latin", "lb": "luxembourgish", "ln": "lingala",
    "lo": "lao", "lt": "lithuanian", "lv": "latvian", "mg": "malagasy", "mi": "maori", "mk": "macedonian",
    "ml": "malayalam", "mn": "mongolian", "mr": "marathi", "ms": "malay", "mt": "maltese", "my": "myanmar",
    "ne": "nepali", "nl": "dutch", "nn": "nynorsk", "no": "norwegian", "oc": "occitan", "pa": "punjabi",
    "pl": "polish", "ps": "pashto", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sa": "sanskrit",
    "sd": "sindhi", "si": "sinhala", "sk": "slovak", "sl": "slovenian", "sn": "shona", "so": "somali",
    "sq": "albanian", "sr": "serbian", "su": "sundanese", "sv": "swedish", "sw": "swahili", "ta": "tamil",
    "te": "telugu", "tg": "tajik", "th": "thai", "tk": "turkmen", "tl": "tagalog", "tr": "turkish", "tt": "tatar",
    "uk": "ukrainian", "ur": "urdu", "uz": "uzbek", "vi": "vietnamese", "yi": "yiddish", "yo": "yoruba",
    "zh": "chinese",
}  # fmt: skip
_BY_NAME = {name: code for code, name in LANGUAGES.items()}
_ALIASES = {"jw": "jv", "javanese": "jv", "burmese": "my", "castilian": "es", "flemish": "nl", "haitian": "ht",
            "letzeburgesch": "lb", "mandarin": "zh", "moldavian": "ro", "moldovan": "ro", "pushto": "ps",
            "panjabi": "pa", "sinhalese": "si", "valencian": "ca"}  # fmt: skip


def normalize_language(value: str | None) -> str | None:
    """An ISO-639-1 code for a code or an English language name (any case); None passes; unknown -> UserError."""
    if value is None or not value.strip():
        return None
    text = value.strip().lower().replace("_", "-")
    base = text.split("-")[0] if len(text) > 3 else text  # accept en-US, pt-BR
    for candidate in (text, base):
        if candidate in LANGUAGES:
            return candidate
        code = _BY_NAME.get(candidate) or _ALIASES.get(candidate)
        if code:
            return code
    raise UserError(f"unknown language {value!r}: use an ISO-639-1 code such as en, de, fr, es, ja, zh")
