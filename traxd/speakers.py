"""Pure: speaker turns merged into a transcript by time overlap, talk time, enrolled-name matching and the DER."""

from __future__ import annotations

import itertools
import math
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Cosine of CAM++ voice prints above which a diarized speaker takes an enrolled name (benchmarks/voiceprints.py).
# Voices made from recordings of real people (Festival's kal, ked, slt) and the real ALSA voice: the same person in
# other sentences 0.860-0.928, different people 0.33-0.67 (0.666 the two US men). 0.75 sits in that gap with room
# on both sides (0.7 was 0.034 above the closest two men). One-word clips of 1.4 s score as low as 0.62 against the
# same person: enrol from a few seconds of speech. espeak-ng's voices are alike to CAM++ (two of them 0.86-0.945),
# so there each name goes to its best-scoring speaker only.
NAME_THRESHOLD = 0.75


@dataclass(frozen=True)
class Turn:
    """One stretch of one speaker's voice, in seconds from the start of the file."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Diarization:
    """What a diarizer heard: turns in time order, and one voice print (embedding) per speaker."""

    turns: list[Turn]
    voices: dict[str, list[float]]


def relabel(d: Diarization) -> Diarization:
    """Speakers named A, B, C … in order of first appearance (a diarizer's own ids mean nothing to readers)."""
    order: dict[str, str] = {}
    for turn in sorted(d.turns, key=lambda t: t.start):
        order.setdefault(turn.speaker, _letter(len(order)))
    turns = [Turn(t.start, t.end, order[t.speaker]) for t in sorted(d.turns, key=lambda t: t.start)]
    return Diarization(turns, {order[k]: v for k, v in d.voices.items() if k in order})


def _letter(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < len(letters) else f"{letters[i // len(letters) - 1]}{letters[i % len(letters)]}"


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """Seconds two intervals share."""
    return max(0.0, min(a1, b1) - max(a0, b0))


def speaker_at(start: float, end: float, turns: Sequence[Turn]) -> str | None:
    """The speaker overlapping [start, end] the most; the nearest turn when none overlaps; None without turns."""
    if not turns:
        return None
    best = max(turns, key=lambda t: overlap(start, end, t.start, t.end))
    if overlap(start, end, best.start, best.end) > 0:
        return best.speaker
    middle = (start + end) / 2
    return min(turns, key=lambda t: min(abs(middle - t.start), abs(middle - t.end))).speaker


def assign(segments: list[dict[str, Any]], turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Segments with `speaker`: by their words' timings when present, else by time, split where the speaker changes."""
    out: list[dict[str, Any]] = []
    for seg in segments:
        words = [w for w in seg.get("words") or [] if "start" in w and "end" in w]
        out += _by_words(seg, words, turns) if words else _by_time(seg, turns)
    return out


def _by_words(seg: dict[str, Any], words: list[dict[str, Any]], turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """One segment per run of words said by the same speaker; each word keeps its own `speaker`."""
    labelled = [{**w, "speaker": speaker_at(float(w["start"]), float(w["end"]), turns)} for w in words]
    runs = [list(g) for _, g in itertools.groupby(labelled, key=lambda w: w["speaker"])]
    if len(runs) == 1:
        return [{**seg, "words": labelled, "speaker": labelled[0]["speaker"]}]
    return [{**seg, "start": run[0]["start"], "end": run[-1]["end"], "text": _join_words(run), "words": run,
             "speaker": run[0]["speaker"]} for run in runs]  # fmt: skip


def _join_words(words: list[dict[str, Any]]) -> str:
    """Words back into text (NAME.json keeps each word stripped)."""
    return " ".join(" ".join(str(w.get("word", w.get("text", ""))).split()) for w in words).strip()


def _by_time(seg: dict[str, Any], turns: Sequence[Turn]) -> list[dict[str, Any]]:
    """Split a segment without word timings at speaker changes, its words shared out in proportion to time."""
    start, end = float(seg.get("start", 0.0)), float(seg.get("end", 0.0))
    pieces = _pieces(start, end, turns)
    words = str(seg.get("text", "")).split()
    if len(pieces) < 2 or len(words) < 2:
        return [{**seg, "speaker": speaker_at(start, end, turns)}]
    out, used, total = [], 0, sum(b - a for a, b, _ in pieces)
    for i, (a, b, who) in enumerate(pieces):
        upto = len(words) if i == len(pieces) - 1 else min(len(words), used + round(len(words) * (b - a) / total))
        if upto > used:
            out.append({**seg, "start": round(a, 3), "end": round(b, 3), "text": " ".join(words[used:upto]),
                        "speaker": who})  # fmt: skip
        used = upto
    return out


def _pieces(start: float, end: float, turns: Sequence[Turn], min_seconds: float = 0.5) -> list[tuple[float, float, str]]:
    """The parts of [start, end] each speaker holds (runs of one speaker joined; slivers under `min_seconds` dropped)."""
    cut = sorted((max(start, t.start), min(end, t.end), t.speaker) for t in turns
                 if overlap(start, end, t.start, t.end) >= min_seconds)  # fmt: skip
    merged: list[tuple[float, float, str]] = []
    for a, b, who in cut:
        if merged and merged[-1][2] == who:
            merged[-1] = (merged[-1][0], b, who)
        else:
            merged.append((a, b, who))
    if merged:  # the pieces cover the whole segment: gaps go to the piece before them
        merged[0] = (start, merged[0][1], merged[0][2])
        merged = [(a, merged[i + 1][0] if i + 1 < len(merged) else end, w) for i, (a, _b, w) in enumerate(merged)]
    return merged


def talk_time(turns: Iterable[Turn]) -> dict[str, float]:
    """Seconds each speaker talks, longest first."""
    totals: dict[str, float] = {}
    for t in turns:
        totals[t.speaker] = totals.get(t.speaker, 0.0) + max(0.0, t.end - t.start)
    return dict(sorted(((k, round(v, 1)) for k, v in totals.items()), key=lambda kv: -kv[1]))


def turns_of(segments: Iterable[Mapping[str, Any]]) -> list[Turn]:
    """The turns segments that already carry a speaker describe (the API's diarizing model)."""
    return [Turn(float(s["start"]), float(s["end"]), str(s["speaker"])) for s in segments if s.get("speaker")]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two voice prints (0 when either is empty or zero)."""
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm and len(a) == len(b) else 0.0


def match_names(voices: Mapping[str, Sequence[float]], enrolled: Mapping[str, Sequence[float]],
                threshold: float = NAME_THRESHOLD) -> dict[str, tuple[str | None, float]]:  # fmt: skip
    """Each diarized speaker's best enrolled name and score; the name only above `threshold`, each name used once."""
    pairs = sorted(((cosine(v, p), label, name) for label, v in voices.items() for name, p in enrolled.items()),
                   reverse=True)  # fmt: skip
    best: dict[str, tuple[str | None, float]] = {label: (None, 0.0) for label in voices}
    taken: set[str] = set()
    for score, label, name in pairs:
        if best[label][0] is None and name not in taken and score >= threshold:
            best[label] = (name, round(score, 4))
            taken.add(name)
        elif best[label] == (None, 0.0):
            best[label] = (None, round(score, 4))
    return best


def der(reference: Sequence[Turn], hypothesis: Sequence[Turn], collar: float = 0.25, step: float = 0.01) -> float:
    """Diarization error rate: (missed + false alarm + confusion) / reference speech, best speaker mapping,
    frames within `collar` seconds of a reference boundary not scored."""
    end = max([t.end for t in [*reference, *hypothesis]] or [0.0])
    bounds = [b for t in reference for b in (t.start, t.end)]
    frames = []
    for i in range(int(end / step) + 1):
        at = (i + 0.5) * step
        if any(abs(at - b) < collar for b in bounds):
            continue
        frames.append((_who(at, reference), _who(at, hypothesis)))
    speech = sum(1 for r, _ in frames if r is not None)
    if not speech:
        return 0.0 if not any(h for _, h in frames) else 1.0
    errors = sum(1 for r, h in frames if (r is None) != (h is None))
    pairs = [(r, h) for r, h in frames if r is not None and h is not None]
    errors += len(pairs) - _best_mapping(pairs)
    return errors / speech


def _who(at: float, turns: Sequence[Turn]) -> str | None:
    return next((t.speaker for t in turns if t.start <= at < t.end), None)


def _best_mapping(pairs: list[tuple[str, str]]) -> int:
    """Frames both sides agree on under the best one-to-one mapping of hypothesis to reference speakers."""
    counts: dict[tuple[str, str], int] = {}
    for pair in pairs:
        counts[pair] = counts.get(pair, 0) + 1
    refs = sorted({r for r, _ in pairs})
    hyps = sorted({h for _, h in pairs})
    if len(hyps) >= len(refs):
        return max(sum(counts.get(p, 0) for p in zip(refs, perm)) for perm in itertools.permutations(hyps, len(refs)))
    return max(sum(counts.get(p, 0) for p in zip(perm, hyps)) for perm in itertools.permutations(refs, len(hyps)))
