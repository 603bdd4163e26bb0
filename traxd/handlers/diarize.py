"""DIARIZE: who spoke when, merged into the transcript TRANSCRIBE already wrote (which it can never lose).

Runs after TRANSCRIBE on the job's audio. The turns found are checkpointed, so a retry only rewrites the files.
When speakers cannot be found (extra not installed, audio gone) the transcript stays as it is, NAME.json says why
in one line, and the chain goes on (ENHANCE still runs).
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from traxd import outputs, speakers
from traxd.adapters import ffmpeg
from traxd.errors import PermanentError
from traxd.handlers.common import option, output_formats, work_dir
from traxd.handlers.registry import TaskContext
from traxd.handlers.translate import keeps_audio
from traxd.logging import get_logger
from traxd.model_catalog import model_info
from traxd.speakers import Diarization, Turn

log = get_logger("diarize")


class Diarizer(Protocol):
    """A speaker diarizer: turns and one voice print per speaker of a 16 kHz mono WAV."""

    name: str

    def diarize(self, wav: Path, *, speakers: int | None = None, min_speakers: int | None = None,
                max_speakers: int | None = None) -> Diarization:  # fmt: skip
        """Who spoke when."""
        ...


def build_diarizer() -> Diarizer:
    """The local diarizer (raises DiarizationUnavailableError, one line, when the extra is not installed)."""
    from traxd.adapters.diarize_local import LocalDiarizer

    return LocalDiarizer()


class Diarizers:
    """The diarizer, built on first use and shared by the process's threads (a failed build is retried next time)."""

    def __init__(self, factory: Callable[[], Diarizer] = build_diarizer) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._built: Diarizer | None = None

    def get(self) -> Diarizer:
        """The shared diarizer."""
        with self._lock:
            if self._built is None:
                self._built = self._factory()
            return self._built


def make_handler(diarizers: Diarizers) -> Callable[[TaskContext, dict[str, Any]], dict[str, Any]]:
    """The DIARIZE handler bound to a shared diarizer."""

    def handle(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
        """DIARIZE with this process's diarizer."""
        return diarize(ctx, payload, diarizers.get)

    return handle


def diarize(ctx: TaskContext, payload: dict[str, Any], get: Callable[[], Diarizer]) -> dict[str, Any]:
    """The TRANSCRIBE result -> NAME.* rewritten with speakers; the result passes the outputs on to ENHANCE."""
    json_path = transcript_json(payload)
    doc = _read(json_path)
    try:
        found, how = _found(ctx, payload, doc, get)
    except PermanentError as exc:  # DiarizationUnavailableError among them: the transcript stands without speakers
        return _without(ctx, payload, json_path, str(exc))
    threshold = ctx.settings.speaker_threshold
    named = speakers.match_names(found.voices, ctx.voices(), threshold) if found.voices else {}
    doc = with_speakers(doc, found, named, how)
    outputs.write_transcript(json_path.parent, json_path.name.removesuffix(".json"), doc, output_formats(ctx))
    _drop_scratch(ctx)
    log.info("speakers_written", task_id=ctx.task.id, speakers=len(doc["speakers"]), diarizer=how)
    return {**payload, "speakers": doc["speakers"], "diarization": doc["diarization"],
            "index": outputs.index_entry(doc, json_path)}  # the search archive gets the speakers too


def transcript_json(payload: dict[str, Any]) -> Path:
    """NAME.json from the TRANSCRIBE result ({"outputs": {"json": …}})."""
    found = (payload.get("outputs") or {}).get("json") if isinstance(payload.get("outputs"), dict) else None
    if not found:
        raise PermanentError("DIARIZE payload names no transcript (expected the TRANSCRIBE result's outputs)")
    return Path(str(found))


def _read(json_path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentError(f"transcript {json_path.name} cannot be read: {exc}") from None
    if not isinstance(doc, dict):
        raise PermanentError(f"transcript {json_path.name} is not a JSON object")
    return doc


def _found(ctx: TaskContext, payload: dict[str, Any], doc: dict[str, Any], get: Callable[[], Diarizer]
           ) -> tuple[Diarization, str]:  # fmt: skip
    """The speakers: the API model's own labels, a previous attempt's checkpoint, or the local diarizer's."""
    if model_info(str(doc.get("model") or "")).speakers and doc.get("backend") == "openai":
        return speakers.relabel(Diarization(speakers.turns_of(doc.get("segments") or []), {})), "api"
    previous = ctx.previous
    if previous.get("turns") is not None:
        return Diarization([Turn(*t) for t in previous["turns"]], dict(previous.get("voices") or {})), previous["how"]
    diarizer = get()
    wav = ffmpeg.to_wav(_media(ctx, payload), work_dir(ctx) / "diarize" / "audio.wav", ctx.cancelled)
    found = speakers.relabel(diarizer.diarize(wav, **_counts(ctx)))
    # Minutes of compute (or a paid call): synced before anything else is sent, like every paid result.
    ctx.checkpoint({"turns": [[t.start, t.end, t.speaker] for t in found.turns], "voices": found.voices,
                    "how": diarizer.name}, paid=True)  # fmt: skip
    return found, diarizer.name


def _media(ctx: TaskContext, payload: dict[str, Any]) -> Path:
    """The audio: the file TRANSCRIBE read (a download stays until DIARIZE is done), else the job's own file."""
    for candidate in (payload.get("media"), ctx.job.source if ctx.job is not None else None):
        if candidate and Path(str(candidate)).is_file():
            return Path(str(candidate))
    raise PermanentError("the audio is no longer there to find speakers in (a downloaded file removed at restart?)")


def _counts(ctx: TaskContext) -> dict[str, int | None]:
    """--speakers N, or --min-speakers/--max-speakers (job options first, then settings)."""
    s = ctx.settings
    return {"speakers": _count(option(ctx, "speakers", s.speakers)),
            "min_speakers": _count(option(ctx, "min_speakers", s.min_speakers)),
            "max_speakers": _count(option(ctx, "max_speakers", s.max_speakers))}  # fmt: skip


def _count(value: Any) -> int | None:
    return int(value) if value not in (None, "", 0) else None


def with_speakers(doc: dict[str, Any], found: Diarization, named: dict[str, tuple[str | None, float]], how: str
                  ) -> dict[str, Any]:  # fmt: skip
    """NAME.json with `speaker` on segments and words, the `speakers` list (talk time, names, scores)."""
    shown = {label: (named.get(label, (None, 0.0))[0] or label) for label in {t.speaker for t in found.turns}}
    segments = speakers.assign(list(doc.get("segments") or []), found.turns)
    for seg in segments:
        seg["speaker"] = shown.get(seg.get("speaker") or "", seg.get("speaker"))
        for word in seg.get("words") or []:
            word["speaker"] = shown.get(word.get("speaker") or "", word.get("speaker"))
    listed = [_entry(label, seconds, named.get(label), shown[label], label in found.voices)
              for label, seconds in speakers.talk_time(found.turns).items()]  # fmt: skip
    status = {"requested": True, "status": "done", "diarizer": how, "speakers": len(listed)}
    return {**doc, "segments": segments, "speakers": listed, "diarization": status}


def _entry(label: str, seconds: float, match: tuple[str | None, float] | None, shown: str, printed: bool
           ) -> dict[str, Any]:  # fmt: skip
    entry: dict[str, Any] = {"speaker": shown, "label": label, "talk_time": seconds}
    if printed and match is not None:
        entry.update(name=match[0], score=match[1])
    return entry


def _without(ctx: TaskContext, payload: dict[str, Any], json_path: Path, reason: str) -> dict[str, Any]:
    """Record why there are no speakers; the transcript already written stays exactly as it is."""
    log.error("diarization_unavailable", task_id=ctx.task.id, reason=reason)
    status = {"requested": True, "status": "unavailable", "reason": reason}
    current = _read(json_path)
    warnings = [w for w in current.get("warnings") or [] if not str(w).startswith("diarization ")]
    outputs.update_json(json_path, {"diarization": status, "warnings": [*warnings, f"diarization unavailable: {reason}"]})
    _drop_scratch(ctx)
    return {**payload, "diarization": status}


def _drop_scratch(ctx: TaskContext) -> None:
    """The job's scratch folder (kept by TRANSCRIBE for this stage) is no longer needed, unless Whisper translates."""
    if ctx.work_dir is not None and not keeps_audio(ctx):
        shutil.rmtree(ctx.work_dir, ignore_errors=True)


def voice_print(sample: Path, scratch: Path, diarizer: Diarizer | None = None) -> tuple[list[float], float]:
    """The voice print of the one person speaking in `sample` (any media file), and the seconds of speech heard."""
    wav = ffmpeg.to_wav(sample, scratch / "sample.wav")
    found = (diarizer or build_diarizer()).diarize(wav, speakers=1)
    heard = speakers.talk_time(found.turns)
    if not heard or not found.voices:
        raise PermanentError(f"{sample.name}: no speech heard in the sample")
    main = next(iter(heard))  # the longest talker, should the sample hold a second voice
    return found.voices[main], sum(heard.values())
