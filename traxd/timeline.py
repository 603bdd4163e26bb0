"""Pure: chunk results on the whole file's timeline, timed words, and speech pieces taken from silences for models
that return text without timings."""

from __future__ import annotations

import bisect
from typing import Any

from traxd import quality


def word(start: float, end: float, text: str, probability: float | None) -> dict[str, Any]:
    """One timed word as NAME.json stores it (times in seconds, rounded to milliseconds)."""
    out: dict[str, Any] = {"start": round(float(start), 3), "end": round(float(end), 3), "word": str(text).strip()}
    if probability is not None:
        out["probability"] = round(float(probability), 4)
    return out


def assign_words(segments: list[dict[str, Any]], words: list[dict[str, Any]]) -> None:
    """Give each segment a `words` list: the words whose middle lies in it (APIs return one list per response)."""
    for seg in segments:
        seg["words"] = []
    if not segments:
        return
    i = 0
    for w in sorted(words, key=lambda w: w["start"]):
        middle = (w["start"] + w["end"]) / 2
        while i + 1 < len(segments) and middle >= float(segments[i + 1]["start"]):
            i += 1
        segments[i]["words"].append(w)


# -- text without timings: pieces of speech between silences ------------------------------------------------------
MAX_CUE_SECONDS = 7.0  # the longest a subtitle cue should stay on screen
PAUSE_SECONDS = 0.4  # a silence this long ends a piece: no cue crosses it
SPLIT_SECONDS = 0.15  # shorter silences, where a piece longer than MAX_CUE_SECONDS may be cut
MIN_PIECE_SECONDS = 0.25  # sound shorter than this between silences is a click, not speech
_SENTENCE_END, _CLAUSE_END = tuple(".!?…"), tuple(",;:")
SENTENCE_PULL, CLAUSE_PULL = 1.0, 0.4  # seconds nearer a cut after a sentence end, a clause end, counts
Span = tuple[float, float]


def speech_pieces(start: float, end: float, silences: list[Span]) -> list[Span]:
    """The stretches of speech in [start, end]: cut at every pause, long stretches cut again at shorter silences."""
    pauses = [s for s in silences if s[1] - s[0] >= PAUSE_SECONDS]
    pieces: list[Span] = []
    at = start
    for s, e in sorted(pauses):
        if s > at:
            pieces.append((at, min(s, end)))
        at = max(at, e)
    if at < end:
        pieces.append((at, end))
    pieces = [p for p in pieces if p[1] - p[0] >= MIN_PIECE_SECONDS] or [(start, end)]
    short = [s for s in silences if SPLIT_SECONDS <= s[1] - s[0] < PAUSE_SECONDS]
    return [part for piece in pieces for part in split_long(piece, short)]


def split_long(piece: Span, silences: list[Span], limit: float = MAX_CUE_SECONDS) -> list[Span]:
    """A piece longer than `limit` cut at the silence inside it nearest its middle, again until short enough (or
    no silence is left: the cue maker then splits that piece by its text)."""
    start, end = piece
    if end - start <= limit:
        return [piece]
    middle = (start + end) / 2
    inside = [s for s in silences if start + 1.0 <= s[0] and s[1] <= end - 1.0]
    if not inside:
        return [piece]
    s, e = min(inside, key=lambda sil: abs((sil[0] + sil[1]) / 2 - middle))
    return split_long((start, s), silences, limit) + split_long((e, end), silences, limit)


def place_text(text: str, pieces: list[Span]) -> list[tuple[Span, str]]:
    """Share the words of `text` out over the pieces in proportion to their length (speech runs at an even pace),
    moving each cut to a nearby sentence or clause end; pieces left without words are dropped."""
    words = text.split()
    if not words or not pieces:
        return []
    ends, total_chars = _word_ends(words)
    total_seconds = sum(e - s for s, e in pieces) or 1.0
    per_second = total_chars / total_seconds
    cuts, elapsed, last = [], 0.0, 0
    for s, e in pieces[:-1]:
        elapsed += e - s
        last = _best_cut(words, ends, elapsed * per_second, per_second, last)
        cuts.append(last)
    bounds = [0, *cuts, len(words)]
    placed = [(piece, " ".join(words[a:b])) for piece, a, b in zip(pieces, bounds, bounds[1:])]
    return [(piece, said) for piece, said in placed if said]


def _word_ends(words: list[str]) -> tuple[list[int], int]:
    ends, at = [], 0
    for w in words:
        at += len(w) + (1 if at else 0)
        ends.append(at)
    return ends, at


def _best_cut(words: list[str], ends: list[int], ideal: float, per_second: float, first: int) -> int:
    """How many words (at least `first`) go before the cut nearest `ideal` characters, a sentence end counting
    1 s nearer.

    Only cuts near `ideal` are weighed: no pull is worth more than SENTENCE_PULL seconds, so a cut farther than
    that much text beyond the nearest one can never win. (Weighing every word made long untimed segments
    quadratic: the cues of 20,000 words took 7.7 s.)
    """
    pace = max(per_second, 1e-6)

    def at(m: int) -> int:
        return ends[m - 1] if m else 0

    def cost(m: int) -> float:
        return abs(at(m) - ideal) / pace - (_pause_after(words[m - 1]) if m else 0.0)

    n = len(words)
    after = min(n, max(first, bisect.bisect_left(ends, ideal) + 1))  # the first cut at or past `ideal` (or the last)
    nearest = min(abs(at(m) - ideal) for m in (max(first, after - 1), after))
    reach = nearest + pace * SENTENCE_PULL + 1.0  # one character of slack for rounding
    lo = max(first, bisect.bisect_left(ends, ideal - reach) + 1 if ideal - reach > 0 else 0)
    hi = min(n, bisect.bisect_right(ends, ideal + reach))
    return min(range(lo, max(lo, hi) + 1), key=cost)


def timed_from_silences(seg: dict[str, Any], silences: list[Span]) -> list[dict[str, Any]]:
    """A segment the model gave no timings inside (its whole chunk) as segments over the pieces of speech."""
    start, end = float(seg["start"]), float(seg["end"])
    inside = [(max(s, start), min(e, end)) for s, e in silences if e > start and s < end]
    stats = {k: v for k, v in seg.items() if k not in ("start", "end", "text", "timing")}
    return [{"start": round(a, 3), "end": round(b, 3), "text": said, **stats, "timing": "silences"}
            for (a, b), said in place_text(str(seg.get("text", "")), speech_pieces(start, end, inside))]  # fmt: skip


def _pause_after(word: str) -> float:
    """Seconds of pull a cut feels towards this word's end: a sentence end more than a clause end."""
    return SENTENCE_PULL if word.endswith(_SENTENCE_END) else CLAUSE_PULL if word.endswith(_CLAUSE_END) else 0.0


def plan_of(chunks: list[dict[str, Any]]) -> list[list[float]]:
    """The chunk layout ([offset, duration] rounded): checkpointed results are reused only for the same layout."""
    return [[round(float(c["offset"]), 2), round(float(c["duration"]), 2)] for c in chunks]


def shift(result: dict[str, Any], offset: float, cap: float) -> dict[str, Any]:
    """A chunk result with segment (and word) times moved by `offset` and clamped to the chunk's end."""
    segs = []
    for seg in result.get("segments") or []:
        moved = _moved(seg, offset, cap)
        if "words" in seg:
            moved["words"] = [_moved(w, offset, cap) for w in seg["words"]]
        segs.append(moved)
    return {**result, "segments": segs}


def _moved(item: dict[str, Any], offset: float, cap: float) -> dict[str, Any]:
    moved = dict(item)
    moved["start"] = round(min(offset + float(item["start"]), cap), 3)
    moved["end"] = round(min(max(offset + float(item["end"]), moved["start"]), cap), 3)
    return moved


def merge(plan: list[list[float]], done: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str | None]:
    """Segments of all chunks on the whole file's timeline, the joined text and the file's language."""
    segments: list[dict[str, Any]] = []
    texts: list[str] = []
    for i, (offset, duration) in enumerate(plan):
        result = shift(done[str(i)], offset, offset + duration)
        segments += result["segments"]
        texts += [result["text"]] if result.get("text") else []
    for seg in segments:
        if (conf := quality.segment_confidence(seg)) is not None:
            seg["confidence"] = conf
    return segments, " ".join(texts), file_language(plan, done)[0]


def file_language(plan: list[list[float]], done: dict[str, Any]) -> tuple[str | None, float | None]:
    """The language most of the file's duration was found in, and the model's mean certainty over those chunks.

    Chunks are detected one by one; where they disagree (a wrong guess on a short or quiet chunk, or a file in two
    languages) the duration-weighted majority names the file.
    """
    weight: dict[str, float] = {}
    sure: dict[str, list[tuple[float, float]]] = {}
    for i, (_offset, duration) in enumerate(plan):
        result = done.get(str(i)) or {}
        if not (code := result.get("language")):
            continue
        weight[code] = weight.get(code, 0.0) + float(duration)
        if (p := result.get("language_probability")) is not None:
            sure.setdefault(code, []).append((float(duration), float(p)))
    if not weight:
        return None, None
    code = max(weight, key=lambda c: (weight[c], -list(weight).index(c)))  # a tie goes to the earlier language
    pairs = sure.get(code) or []
    total = sum(d for d, _ in pairs)
    return code, (round(sum(d * p for d, p in pairs) / total, 4) if total > 0 else None)
