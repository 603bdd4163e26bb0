"""Pure: timed words, and speech pieces taken from silences for models that return text without timings."""

from __future__ import annotations

from typing import Any


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
