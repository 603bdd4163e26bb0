"""Pure: confidence and quality warnings from segment statistics, using Whisper's own thresholds."""

from __future__ import annotations

import math
from typing import Any

LOGPROB_THRESHOLD = -1.0
COMPRESSION_THRESHOLD = 2.4
NO_SPEECH_THRESHOLD = 0.6
MIN_SPEECH_SECONDS = 1.0  # a file at least this long with no words gets a warning


def confidence(avg_logprob: float | None) -> float | None:
    """exp(avg_logprob), the mean token probability of a segment."""
    if avg_logprob is None:
        return None
    return round(math.exp(min(0.0, float(avg_logprob))), 4)


def segment_confidence(seg: dict[str, Any]) -> float | None:
    """The mean probability of the segment's words where it has them, else exp(avg_logprob).

    Local Whisper gives every segment of one 30 s window the same avg_logprob; the words tell segments apart.
    """
    probs = [float(w["probability"]) for w in seg.get("words") or [] if w.get("probability") is not None]
    if probs:
        return round(sum(probs) / len(probs), 4)
    return confidence(seg.get("avg_logprob"))


def segment_warnings(seg: dict[str, Any]) -> list[str]:
    """Why a segment looks doubtful (empty when it looks fine or has no statistics)."""
    lp, cr, ns = seg.get("avg_logprob"), seg.get("compression_ratio"), seg.get("no_speech_prob")
    low = lp is not None and lp < LOGPROB_THRESHOLD
    if any(w.get("probability") is not None for w in seg.get("words") or []):
        low = (segment_confidence(seg) or 0.0) < math.exp(LOGPROB_THRESHOLD)
    # Whisper samples at a higher temperature only when its deterministic decode failed these same thresholds;
    # what sampling then returns may pass them by chance (seen: a German clip read as English, by a random draw).
    low = low or (seg.get("temperature") or 0.0) > 0.0
    out = []
    if lp is not None and ns is not None and ns > NO_SPEECH_THRESHOLD and lp < LOGPROB_THRESHOLD:
        out.append("probably silence or noise")
    elif low:
        out.append("low confidence")
    if cr is not None and cr > COMPRESSION_THRESHOLD:
        out.append("repetitive text (possible hallucination)")
    return out


def _span(seg: dict[str, Any]) -> float:
    return max(0.0, float(seg.get("end", 0.0)) - float(seg.get("start", 0.0)))


def file_quality(segments: list[dict[str, Any]], duration: float | None = None) -> dict[str, Any]:
    """Per-file metrics (duration-weighted confidence, flagged segments) and de-duplicated warnings."""
    scored = [(c, _span(s)) for s in segments if (c := segment_confidence(s)) is not None]
    weight = sum(w for _, w in scored)
    conf = None
    if scored:
        total = sum(c * (w if weight else 1.0) for c, w in scored)
        conf = round(total / (weight if weight else len(scored)), 4)
    flagged: dict[str, list[float]] = {}
    for seg in segments:
        for warning in segment_warnings(seg):
            flagged.setdefault(warning, []).append(float(seg.get("start", 0.0)))
    warnings = [_describe(w, starts) for w, starts in flagged.items()]
    words = sum(len(str(s.get("text", "")).split()) for s in segments)
    if words == 0 and (duration or 0.0) >= MIN_SPEECH_SECONDS:
        warnings.append("low confidence: no speech recognised")
    return {"confidence": conf, "segments": len(segments), "scored_segments": len(scored),
            "flagged_segments": sum(len(v) for v in flagged.values()), "words": words, "warnings": warnings}  # fmt: skip


def _describe(warning: str, starts: list[float]) -> str:
    first = ", ".join(_clock(t) for t in starts[:3]) + (" …" if len(starts) > 3 else "")
    return f"{warning}: {len(starts)} segment{'s' if len(starts) != 1 else ''} (at {first})"


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
