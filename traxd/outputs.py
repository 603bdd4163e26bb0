"""Transcript outputs: NAME.json and the chosen formats (traxd.exports) written atomically as one set, names sanitised
and kept in the output folder."""

from __future__ import annotations

import errno
import fcntl
import glob
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from typing import Any

from traxd.errors import DISK_FULL_ERRNOS, disk_full
from traxd.exports import DEFAULT_FORMATS, FORMATS, WRITERS
from traxd.timeline import MAX_CUE_SECONDS, place_text

# A name is taken when any file of any format already has it (even one this job did not choose).
EXTENSIONS = FORMATS
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
PLACEHOLDER = "writing"  # the status of the JSON that reserves a name until the real one replaces it
_PLACEHOLDER_BYTES = 4096  # one filesystem block
# update_json is read-modify-write; threads of one daemon must not interleave on the same file.
_JSON_LOCK = threading.Lock()


def write_text_atomic(path: Path | str, text: str | bytes, mode: int = 0o644) -> Path:
    """Write text (UTF-8) or bytes to a temp file in the same folder, fsync it, then os.replace it over `path` (with `mode`); the
    temp files of earlier writes of `path` that a kill -9 left are removed afterwards."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _Staged(target, text, mode).commit()
    fsync_dir(target.parent)
    _remove_stale_temps(target.parent, target.name)
    return target


def fsync_dir(folder: Path) -> None:
    """Sync a folder's entries: a rename is durable only once its folder is synced (a power cut loses it otherwise)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # some network and FUSE file systems cannot sync a folder: their renames are as durable as they get
    finally:
        os.close(fd)


class _Staged:
    """`text` (UTF-8) or bytes in a synced temp file beside `target`, flocked (sweeps skip a live writer's temp) until commit() renames
    it over `target` or discard() removes it. A failed write removes its temp file itself."""

    def __init__(self, target: Path, text: str | bytes, mode: int = 0o644) -> None:
        self.target = target
        fd, self.tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        self.fh = os.fdopen(fd, "wb")
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
            self.fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            self.fh.flush()
            os.fsync(self.fh.fileno())
            os.fchmod(self.fh.fileno(), mode)
        except BaseException:
            self.discard()
            raise

    def commit(self) -> None:
        """Rename the temp file over the target (then let go of the lock)."""
        try:
            os.replace(self.tmp, self.target)
        except BaseException:
            self.discard()
            raise
        self.fh.close()

    def discard(self) -> None:
        """Remove the temp file (when it is still there) and let go of it."""
        Path(self.tmp).unlink(missing_ok=True)
        self.fh.close()


def _remove_stale_temps(folder: Path, name: str, min_age: float = 2.0) -> None:
    """Delete the temp files of earlier writes of `name` (and of the names it begins) that a kill -9 left behind in
    `folder` (the retry rewrites them).

    A live writer holds its temp file's flock from just after mkstemp until os.replace, so a temp that can be locked
    belongs to a dead writer; the age check covers the instant between mkstemp and the flock.
    """
    _remove_dead(folder.glob(f".{glob.escape(name)}.*.tmp"), min_age)


def sweep_temps(folder: Path, min_age: float = 2.0) -> int:
    """Remove the `.NAME.*.tmp` files of writers that died (kill -9) in `folder`; returns how many (start-up)."""
    return _remove_dead(folder.glob(".*.*.tmp") if folder.is_dir() else [], min_age)


def _remove_dead(paths: Any, min_age: float) -> int:
    """Unlink the temp files no live writer holds (its flock dies with it) and older than `min_age` seconds."""
    cutoff = time.time() - min_age
    removed = 0
    for leftover in paths:
        try:
            if leftover.lstat().st_mtime >= cutoff or not leftover.is_file():
                continue
            with open(leftover, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                leftover.unlink()
            removed += 1
        except OSError:
            pass  # gone already, or a live writer holds it
    return removed


def write_json_atomic(path: Path | str, data: Any) -> Path:
    """Write `data` as indented UTF-8 JSON, atomically."""
    return write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def update_json(path: Path | str, patch: dict[str, Any]) -> dict[str, Any]:
    """Merge `patch` into the JSON object at `path` (created when missing; top-level keys replaced), atomically."""
    with _JSON_LOCK:
        target = Path(path)
        loaded = json.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
        data: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        data.update(patch)
        write_json_atomic(target, data)
        return data


def sanitize_name(name: str) -> str:
    """A file-name stem safe on every OS: no separators, control characters, leading dots or reserved names."""
    text = unicodedata.normalize("NFC", name)
    text = _UNSAFE.sub("_", text).strip().strip(".").strip()
    text = re.sub(r"\s+", " ", text)[:MAX_NAME_CHARS]
    while len(text.encode("utf-8")) > 200:
        text = text[:-1]
    text = text.rstrip(". ")  # after both cuts: Windows refuses names ending in a dot or a space
    if not text:
        return "transcript"
    return f"_{text}" if text.split(".")[0].lower() in _RESERVED else text


def inside(folder: Path, name: str) -> Path:
    """folder/name, refusing anything that would resolve outside the folder."""
    root = folder.resolve()
    path = (root / name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ValueError(f"output name {name!r} escapes the output folder {root}")
    return path


def choose_base(output_dir: Path, name: str, owner: str, prefer: str | None = None) -> str:
    """Pick NAME, NAME-2, NAME-3 … so different inputs never share names; `owner` (the source) keeps its own.

    `prefer` is the name an earlier attempt of the same job chose: kept while it is still ours or free.
    """
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        if prefer and _claim(output_dir, prefer, owner):
            return prefer
        stem = sanitize_name(name)
        for n in range(1, 10_000):
            base = stem if n == 1 else f"{stem}-{n}"
            if _claim(output_dir, base, owner):
                return base
    except OSError as exc:
        if exc.errno in DISK_FULL_ERRNOS:
            raise disk_full(exc, output_dir, _PLACEHOLDER_BYTES, f"reserving the name {name!r}") from None
        raise
    raise RuntimeError(f"no free output name for {name!r} in {output_dir}")


def _claim(output_dir: Path, base: str, owner: str) -> bool:
    """True when `base` is ours (its JSON names us) or free, in which case a placeholder JSON reserves it."""
    if any((output_dir / f"{base}.{ext}").is_symlink() for ext in EXTENSIONS):
        return False  # Trax makes no links: one (even dangling) is someone else's, and would be written through
    json_path = inside(output_dir, f"{base}.json")
    if json_path.exists():
        return _owner_of(json_path) == owner
    if any(inside(output_dir, f"{base}.{ext}").exists() for ext in EXTENSIONS):
        return False  # something that is not ours already uses this name
    try:
        fd = os.open(json_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return _owner_of(json_path) == owner
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"source": owner, "status": PLACEHOLDER}, fh)
    except BaseException:
        json_path.unlink(missing_ok=True)  # an empty NAME.json would make the name look taken for ever
        raise
    return True


def _is_placeholder(json_path: Path) -> bool:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("status") == PLACEHOLDER


def _owner_of(json_path: Path) -> str | None:
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("source") if isinstance(data, dict) else None


def stamp(seconds: float, sep: str) -> str:
    """HH:MM:SS,mmm (SRT) or HH:MM:SS.mmm (VTT)."""
    ms = max(0, round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def cues(segments: list[dict[str, Any]], max_chars: int = 160,
         max_seconds: float = MAX_CUE_SECONDS) -> list[tuple[float, float, str]]:  # fmt: skip
    """Subtitle cues: one per segment; a segment too long for one cue is cut between its timed words, or (no
    words: the last resort) by its text, at sentence ends where they are near, its time shared by length."""
    out: list[tuple[float, float, str]] = []
    for seg in segments:
        text = " ".join(str(seg.get("text", "")).split())
        start, end = float(seg.get("start", 0.0)), float(seg.get("end", 0.0))
        if not text or end <= start:
            continue
        if end - start <= max_seconds and len(text) <= max_chars:
            out.append((start, end, text))
        elif _words_say(seg, text):
            out += _by_words(seg["words"], max_chars, max_seconds)
        else:
            out += _by_text(text, start, end, max_chars, max_seconds)
    return out


def _by_words(words: list[dict[str, Any]], max_chars: int, max_seconds: float) -> list[tuple[float, float, str]]:
    """Timed words grouped into cues no longer than the limits (each cue from its first word to its last)."""
    out: list[tuple[float, float, str]] = []
    group: list[dict[str, Any]] = []
    for w in words:
        text = " ".join([*(g["word"] for g in group), w["word"]])
        if group and (float(w["end"]) - float(group[0]["start"]) > max_seconds or len(text) > max_chars):
            out.append(_cue_of(group))
            group = []
        group.append(w)
    return out + ([_cue_of(group)] if group else [])


def _words_say(seg: dict[str, Any], text: str) -> bool:
    """True when the segment's timed words spell its text (not so once the text is translated or rewritten)."""
    words = seg.get("words") or []
    if not words or not all(isinstance(w, dict) and "word" in w for w in words):
        return False  # a word without its text cannot time a cue: the text is cut instead
    return "".join("".join(str(w["word"]).split()) for w in words) == "".join(text.split())


def _cue_of(group: list[dict[str, Any]]) -> tuple[float, float, str]:
    return float(group[0]["start"]), float(group[-1]["end"]), " ".join(str(g["word"]).strip() for g in group)


def _by_text(text: str, start: float, end: float, max_chars: int, max_seconds: float) -> list[tuple[float, float, str]]:
    """The last resort: cut the text into enough parts for the limits; each part's time in proportion to its length."""
    parts = max(2, math.ceil((end - start) / max_seconds), math.ceil(len(text) / (max_chars * 0.8)))
    step = (end - start) / parts
    placed = [said for _, said in place_text(text, [(start + i * step, start + (i + 1) * step) for i in range(parts)])]
    if len(placed) < 2:
        return [(start, end, text)]  # one word: nothing to cut
    total = sum(len(p) for p in placed)  # two parts or more, none empty (place_text drops those)
    out, at = [], start
    for said in placed:
        nxt = at + (end - start) * len(said) / total
        too_long = len(said) > max_chars or nxt - at > max_seconds
        out += _by_text(said, at, nxt, max_chars, max_seconds) if too_long else [(at, nxt, said)]
        at = nxt
    return out


def speaker_cues(segments: list[dict[str, Any]]) -> list[tuple[float, float, str, str | None]]:
    """The cues with the speaker of the segment each comes from (None when not diarized)."""
    if not any(s.get("speaker") for s in segments):
        return [(a, b, t, None) for a, b, t in cues(segments)]
    return [(a, b, t, seg.get("speaker")) for seg in segments for a, b, t in cues([seg])]


def _voice(speaker: str) -> str:
    """A speaker name safe inside a WebVTT voice tag."""
    return " ".join(re.sub(r"[<>&\n]", " ", speaker).split()) or "?"


def to_srt(segments: list[dict[str, Any]]) -> str:
    """SubRip text of the segments (a diarized cue starts with its speaker: `A: …`)."""
    blocks = [f"{i}\n{stamp(a, ',')} --> {stamp(b, ',')}\n{f'{who}: ' if who else ''}{t}\n"
              for i, (a, b, t, who) in enumerate(speaker_cues(segments), 1)]  # fmt: skip
    return "\n".join(blocks)


def to_vtt(segments: list[dict[str, Any]]) -> str:
    """WebVTT text of the segments (a diarized cue carries a voice tag: `<v A>…`)."""
    blocks = [f"{stamp(a, '.')} --> {stamp(b, '.')}\n{f'<v {_voice(who)}>' if who else ''}{t}\n"
              for a, b, t, who in speaker_cues(segments)]  # fmt: skip
    return "WEBVTT\n\n" + "\n".join(blocks)


def speaker_turns(segments: list[dict[str, Any]]) -> str:
    """`A: …` paragraphs, one per turn (consecutive segments of one speaker joined)."""
    turns: list[tuple[str, list[str]]] = []
    for seg in segments:
        text = " ".join(str(seg.get("text", "")).split())
        if not text:
            continue
        who = str(seg.get("speaker") or "?")
        if turns and turns[-1][0] == who:
            turns[-1][1].append(text)
        else:
            turns.append((who, [text]))
    return "\n".join(f"{who}: {' '.join(parts)}" for who, parts in turns) + "\n"


def to_txt(segments: list[dict[str, Any]], text: str | None = None) -> str:
    """Plain transcript: speaker turns when diarized, else the model's text, else one paragraph per segment."""
    if any(s.get("speaker") for s in segments):
        return speaker_turns(segments)
    if text is not None and text.strip():
        return text.strip() + "\n"
    lines = [" ".join(str(s.get("text", "")).split()) for s in segments]
    return "\n".join(line for line in lines if line) + "\n"


def render(fmt: str, doc: dict[str, Any]) -> str | bytes:
    """One format of a NAME.json document (a name of traxd.exports.FORMATS)."""
    segments = list(doc.get("segments") or [])
    if fmt == "json":
        return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"
    if fmt == "txt":
        return to_txt(segments, doc.get("text"))
    if fmt in ("srt", "vtt"):
        return to_srt(segments) if fmt == "srt" else to_vtt(segments)
    return WRITERS[fmt](doc)


def write_transcript(output_dir: Path, base: str, doc: dict[str, Any],
                     formats: tuple[str, ...] = DEFAULT_FORMATS) -> dict[str, str]:  # fmt: skip
    """Write NAME.* in the chosen formats and finally NAME.json (always written, and last: it marks the set complete).

    All are written and synced as temp files before the first one is renamed into place, so a write that fails
    (a full disk) changes no NAME.*: a rewrite keeps the whole earlier set, a first write leaves nothing behind, not
    even the name's placeholder. It raises DiskFullError saying where and how much space the set needs.
    """
    texts = {ext: render(ext, doc) for ext in (*(f for f in formats if f != "json"), "json")}
    targets = {ext: inside(output_dir, f"{base}.{ext}") for ext in texts}
    new = {ext for ext, path in targets.items() if not path.exists() or ext == "json" and _is_placeholder(path)}
    staged: list[_Staged] = []
    kept: dict[str, _Kept] = {}
    try:
        targets["json"].parent.mkdir(parents=True, exist_ok=True)
        for ext, text in texts.items():
            staged.append(_Staged(targets[ext], text))
        for ext in (e for e in texts if e not in new):
            kept[ext] = _Kept(targets[ext])
        for each in staged:
            each.commit()
    except BaseException as exc:
        _undo(targets["json"].parent, staged, kept, [targets[ext] for ext in new])
        if not isinstance(exc, OSError):
            raise
        if exc.errno in DISK_FULL_ERRNOS:
            need = sum(len(t.encode("utf-8") if isinstance(t, str) else t) for t in texts.values())
            raise disk_full(exc, output_dir, need, f"writing {base}.{'/.'.join(texts)}") from None
        raise
    for old in kept.values():
        old.drop()
    fsync_dir(targets["json"].parent)
    _remove_stale_temps(targets["json"].parent, base)  # one listing of the outbox for all the names, not one each
    return {ext: str(path) for ext, path in targets.items()}


class _Kept:
    """A hard link to a file a rewrite replaces, so a rewrite that fails half way can put the old file back."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.link = target.with_name(f".{target.name}.{os.urandom(4).hex()}.old.tmp")  # swept like a temp if killed
        try:
            os.link(target, self.link, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in _NO_LINKS or target.is_dir():
                raise
            shutil.copy2(target, self.link)  # a file system without hard links (FAT, some network shares)

    def restore(self) -> None:
        """The old file takes its name again (the new one, when it was renamed in, goes)."""
        os.replace(self.link, self.target)
        self.link.unlink(missing_ok=True)  # a rename onto another link of the same file leaves both in place

    def drop(self) -> None:
        """The rewrite took: the old file is no longer needed."""
        self.link.unlink(missing_ok=True)


_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK)


def _undo(folder: Path, staged: list[_Staged], kept: dict[str, _Kept], created: list[Path]) -> None:
    """After a set failed: no temp file left, every replaced file back as it was, every new name gone."""
    for each in staged:
        each.discard()
    for old in kept.values():
        old.restore()
    for path in created:
        path.unlink(missing_ok=True)
    if kept:
        fsync_dir(folder)  # the old set's names are back: keep them so through a power cut


def index_entry(doc: dict[str, Any], json_path: Path | str) -> dict[str, Any] | None:
    """What the search archive keeps of a NAME.json document (None when it is not a finished transcript)."""
    segments = doc.get("segments") if isinstance(doc, dict) else None
    if not isinstance(segments, list):
        return None  # not a transcript: another program's JSON, or a name's reservation (it holds no segments)
    kept = [{"start": float(s.get("start") or 0.0), "end": float(s.get("end") or 0.0), "text": str(s["text"]),
             "speaker": str(s["speaker"]) if s.get("speaker") else None}
            for s in segments if isinstance(s, dict) and str(s.get("text") or "").strip()]  # fmt: skip
    return {"json_path": str(json_path), "name": str(doc.get("name") or Path(json_path).stem),
            "source": str(doc.get("source") or ""), "language": doc.get("language"),
            "duration": doc.get("duration"), "segments": kept}  # fmt: skip
