"""Pure: a vocabulary list (names and rare words a job expects) and how it reaches the model.

Locally the terms become faster-whisper's `hotwords` (put before every 30 s window; faster-whisper keeps at most
223 tokens of them). For the API they open the `prompt`, before the tail of the previous chunk's text; Whisper reads
about 224 tokens of a prompt. A list cut to fit says so in the transcript's warnings.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from traxd.errors import UsageError

PROMPT_TOKENS = 224  # Whisper's prompt window (n_text_ctx / 2), the API's documented limit alike
HOTWORD_TOKENS = 223  # faster-whisper cuts hotwords to max_length // 2 - 1
CHARS_PER_TOKEN = 600 / PROMPT_TOKENS  # without a tokenizer (the API): ~600 characters fill the window
_SPLIT = re.compile(r"[,;\n]")


def parse(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Terms from `"Trax, DeepSeek"`, a list, or `@FILE` / a path to a file of terms (one a line or comma-separated)."""
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("@") or (len(text) < 4096 and "," not in text and _is_file(text)):
            text = _read(text.removeprefix("@"))
        items: Iterable[str] = _SPLIT.split(text)
    else:
        items = value
    seen: dict[str, None] = {}
    for item in items:
        term = " ".join(str(item).split())
        if term and term.casefold() not in {t.casefold() for t in seen}:
            seen[term] = None
    return tuple(seen)


def _is_file(text: str) -> bool:
    try:
        return Path(text).expanduser().is_file()
    except OSError:
        return False


def _read(name: str) -> str:
    path = Path(name).expanduser()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--vocabulary: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def fit(terms: tuple[str, ...], budget: int, count: Callable[[str], int]) -> tuple[str, str | None]:
    """The joined terms that fit `budget` tokens (as `count` measures them), and a warning when some were cut."""
    low, high = 0, len(terms)  # the most leading terms that fit: more terms never take fewer tokens
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if count(joined(terms[:mid])) <= budget else (low, mid - 1)
    if low == len(terms):
        return joined(terms), None
    return joined(terms[:low]), (f"vocabulary cut to its first {low} of {len(terms)} terms: the model reads at most "
                                 f"{budget} tokens of it")  # fmt: skip


def joined(terms: list[str] | tuple[str, ...]) -> str:
    """The terms as the model reads them."""
    return ", ".join(terms)


def estimated_tokens(text: str) -> int:
    """Tokens of `text` without a tokenizer (the API's prompt): by length, rounded up."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def api_prompt(terms: tuple[str, ...], tail: str | None) -> tuple[str | None, str | None]:
    """The API's prompt: the vocabulary first (cut to the window), then as much of the previous text as still fits."""
    words, warning = fit(terms, PROMPT_TOKENS, estimated_tokens)
    if not words:
        return tail, warning
    room = int((PROMPT_TOKENS - estimated_tokens(words) - 1) * CHARS_PER_TOKEN)
    rest = last_words(tail or "", room)
    return (f"{words}. {rest}" if rest else f"{words}."), warning


def last_words(text: str, max_chars: int) -> str:
    """The last whole words of `text`, at most `max_chars` long."""
    out: list[str] = []
    used = 0
    for word in reversed(text.split()):
        if used + len(word) + 1 > max_chars:
            break
        out.append(word)
        used += len(word) + 1
    return " ".join(reversed(out))
