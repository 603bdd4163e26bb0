"""FFmpeg (the binary imageio-ffmpeg ships) in a child process: probe, convert to mono 16 kHz Opus, chunk at silences.

Untrusted media is only ever decoded by FFmpeg in its own process group, with `-nostdin`, a protocol whitelist of
`file,pipe`, `file:`-prefixed absolute paths (a name starting with '-' cannot become an option) and a wall-clock
timeout that kills the group. Python never reads the media: FFmpeg's log goes to a file that is parsed line by line.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from traxd.errors import PermanentError, RetryableError, disk_full
from traxd.types import StopFlag

SAMPLE_RATE = 16000
BITRATE_KBPS = 32
CHUNK_EXT = "ogg"
CHUNK_MIME = "audio/ogg"
# Uploads are speech-bitrate Opus (small, under the 25 MB cap); the local backend reads PCM WAV: nothing is lost, and
# neither FFmpeg nor faster-whisper spends CPU on a lossy codec.
OPUS_ARGS = ("-c:a", "libopus", "-b:a", f"{BITRATE_KBPS}k", "-application", "voip", "-f", "ogg")
PCM_ARGS = ("-c:a", "pcm_s16le", "-f", "wav")
SILENCE_DB = -35
SILENCE_MIN = 0.15  # short enough to find the gaps that can split a long subtitle cue; chunks use the longest
PROBE_TIMEOUT = 60.0
PROBE_ABOVE_BYTES = 20_000_000
SMALL_FILE_TIMEOUT = 1200.0
_DURATION = re.compile(r"^\s*Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: (Audio|Video):")
_SIL_START = re.compile(r"silence_start: (-?\d+(?:\.\d+)?)")
_SIL_END = re.compile(r"silence_end: (-?\d+(?:\.\d+)?)")
_TIME = re.compile(r"time=(\d+):(\d\d):(\d\d(?:\.\d+)?)")


WAV_PROBE_PACKETS = 2  # 8 kB: several MP3 frames even at 320 kb/s
MIN_FREE_BYTES = 1 << 20  # FFmpeg writes in blocks of up to a few hundred kB


@dataclass(frozen=True)
class Probe:
    """What FFmpeg says about an input."""

    duration: float | None
    audio: bool
    video: bool


@dataclass(frozen=True)
class Chunk:
    """One piece of converted audio and where it sits in the whole file."""

    path: str
    offset: float
    duration: float


@dataclass(frozen=True)
class Prepared:
    """The result of preprocessing: total duration, the chunks in order and the silences (start, end) found."""

    duration: float
    chunks: list[Chunk]
    silences: list[tuple[float, float]] = field(default_factory=list)


def ffmpeg_exe() -> str:
    """Path of the FFmpeg binary from PyPI (imageio-ffmpeg)."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def media_arg(path: Path | str) -> str:
    """An absolute `file:` URL for FFmpeg, so no input name can be read as an option or another protocol."""
    return "file:" + os.path.abspath(path)


def input_args(path: Path | str) -> list[str]:
    """`-i` for an untrusted input: only local files, never an option.

    FFmpeg sniffs the samples of a PCM WAV for a compressed stream labelled PCM (MP3 in a WAV) by running every
    demuxer's probe over up to 32 packets: 20 ms of CPU, a third of converting a short WAV. Two packets still find it.
    """
    sniff = ["-max_probe_packets", str(WAV_PROBE_PACKETS)] if _head(path)[8:12] == b"WAVE" else []
    return ["-protocol_whitelist", "file,pipe", *sniff, "-i", media_arg(path)]


def _head(path: Path | str, size: int = 12) -> bytes:
    """The first `size` bytes of a file (12: a RIFF header's length); empty when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def is_mono_opus(path: Path | str) -> bool:
    """True for Ogg Opus with one channel (a voice note, or a chunk Trax made): already what the API gets."""
    head = _head(path, 64)
    at = head.find(b"OpusHead")  # the identification header, in the first page
    return head[:4] == b"OggS" and at > 0 and len(head) > at + 9 and head[at + 9] == 1


def run_ffmpeg(args: list[str], log_path: Path, timeout: float, cancelled: StopFlag | None = None) -> int:
    """Run FFmpeg with `args` in its own process group, log to `log_path`; kill the group on timeout or cancel."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                start_new_session=True, close_fds=True)  # fmt: skip
    done, why = threading.Event(), list[str]()
    # A watcher kills on timeout/cancel, so the blocking wait below returns the moment FFmpeg exits.
    watcher = threading.Thread(target=_watch, args=(proc, done, time.monotonic() + timeout, cancelled, why), daemon=True)
    watcher.start()
    code = proc.wait()
    done.set()
    watcher.join()
    if why == ["cancelled"]:
        raise RetryableError("FFmpeg interrupted: the task was cancelled")
    if why == ["timeout"]:
        raise PermanentError(f"FFmpeg took longer than {timeout:.0f} s and was stopped")
    if code != 0:
        _check_space(log_path.parent)
    return code


def _check_space(folder: Path) -> None:
    """A failed FFmpeg run in a folder with no room left failed for the disk, not the media: retryable, says so."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < MIN_FREE_BYTES:
        raise disk_full(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), folder, None, "FFmpeg's audio")


def _watch(proc: subprocess.Popen[bytes], done: threading.Event, deadline: float,
           cancelled: StopFlag | None, why: list[str]) -> None:  # fmt: skip
    while not done.wait(0.1):
        if cancelled is not None and cancelled.is_set():
            why.append("cancelled")
        elif time.monotonic() > deadline:
            why.append("timeout")
        if why:
            _kill(proc)
            return


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def log_lines(log_path: Path) -> Iterator[str]:
    """FFmpeg's log, line by line (never loaded whole)."""
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            for part in line.split("\r"):
                yield part.rstrip("\n")


def last_error(log_path: Path) -> str:
    """The most telling line of a failed FFmpeg run."""
    lines = [ln.strip() for ln in log_lines(log_path) if ln.strip()]
    for line in reversed(lines):
        if "Error opening input" in line or "Invalid data" in line or "No such file" in line:
            return line.split("] ", 1)[-1]
    return lines[-1].split("] ", 1)[-1] if lines else "no output from FFmpeg"


def check_input(path: Path) -> None:
    """Refuse inputs FFmpeg should never see: missing, not a regular file, empty, unreadable, truncated WAV."""
    name = path.name
    try:
        st = path.stat()
    except FileNotFoundError:
        raise PermanentError(f"{name}: file not found (was it moved or deleted after it was queued?)") from None
    if not path.is_file():
        raise PermanentError(f"{name}: not a regular file")
    if st.st_size == 0:
        raise PermanentError(f"{name}: empty file (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
    except PermissionError:
        raise PermanentError(f"{name}: permission denied (cannot read the file)") from None
    _check_riff(name, head, st.st_size)


def _check_riff(name: str, head: bytes, size: int) -> None:
    """A RIFF/WAVE file shorter than its header declares was cut off (copy interrupted, disk full)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    declared = int.from_bytes(head[4:8], "little")
    if declared not in (0, 0xFFFFFFFF) and declared + 8 > size:
        raise PermanentError(f"{name}: truncated WAV (header declares {declared + 8} bytes, file has {size})")


def probe(path: Path, work_dir: Path, cancelled: StopFlag | None = None) -> Probe:
    """Read the container header with `ffmpeg -i`; PermanentError when it is not media or has no audio."""
    check_input(path)
    log = work_dir / "probe.log"
    run_ffmpeg(input_args(path), log, PROBE_TIMEOUT, cancelled)
    return require_audio(path, read_header(log), log)


def read_header(log: Path) -> Probe | None:
    """The input's duration and stream kinds from an FFmpeg log; None when FFmpeg could not open it as media."""
    duration, kinds, opened = None, set(), False
    for line in log_lines(log):
        if line.startswith("Output #0") or "silence_start" in line:
            break
        opened = opened or line.startswith("Input #0")
        if (m := _DURATION.match(line)) is not None:
            duration = _seconds(m.groups())
        if (m := _STREAM.match(line)) is not None:
            kinds.add(m.group(1))
    return Probe(duration, "Audio" in kinds, "Video" in kinds) if opened else None


def require_audio(path: Path, info: Probe | None, log: Path) -> Probe:
    """The header, or PermanentError unless it shows media with an audio stream."""
    if info is None:
        raise PermanentError(f"{path.name}: not a media file FFmpeg can read ({last_error(log)})")
    if not info.audio:
        what = "video without an audio track" if info.video else "no audio stream"
        raise PermanentError(f"{path.name}: {what}, nothing to transcribe")
    return info


def _seconds(hms: Iterable[str]) -> float:
    h, m, s = hms
    return int(h) * 3600 + int(m) * 60 + float(s)


def convert_args(src: Path, dest: Path, silences: bool = True) -> list[str]:
    """The FFmpeg arguments that turn any input into mono 16 kHz speech-bitrate Opus, or PCM when `dest` ends in
    .wav (and log silences).

    One thread each: the audio chain is serial anyway, and the pool already runs one FFmpeg per core.
    """
    filters = ["-af", f"silencedetect=noise={SILENCE_DB}dB:d={SILENCE_MIN}"] if silences else []
    return [*input_args(src), "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1", "-ac", "1",
            "-ar", str(SAMPLE_RATE), *filters, *(PCM_ARGS if dest.suffix == ".wav" else OPUS_ARGS),
            "-threads", "1", "-filter_threads", "1", "-y", media_arg(dest)]  # fmt: skip


def copy_args(src: Path, dest: Path) -> list[str]:
    """The FFmpeg arguments that copy the audio packets of `src` into Ogg `dest` unchanged, while the decoded audio
    goes through silence detection only."""
    return [*input_args(src), "-map", "0:a:0", "-map_metadata", "-1", "-c:a", "copy", "-f", "ogg", "-y",
            media_arg(dest), "-map", "0:a:0", "-af", f"silencedetect=noise={SILENCE_DB}dB:d={SILENCE_MIN}",
            "-threads", "1", "-filter_threads", "1", "-f", "null", "-"]  # fmt: skip


def convert(src: Path, dest: Path, timeout: float, cancelled: StopFlag | None = None,
            copy: bool = False) -> tuple[float, list[tuple[float, float]]]:  # fmt: skip
    """Convert (or with `copy`, copy) `src` into `dest` in one pass that also reads the header; (decoded seconds,
    silences)."""
    log = dest.with_suffix(".log")
    code = run_ffmpeg(copy_args(src, dest) if copy else convert_args(src, dest), log, timeout, cancelled)
    require_audio(src, read_header(log), log)
    if code != 0:
        raise PermanentError(f"{src.name}: FFmpeg could not decode the audio ({last_error(log)})")
    decoded, silences, start = 0.0, [], None
    for line in log_lines(log):
        if (m := _SIL_START.search(line)) is not None:
            start = max(0.0, float(m.group(1)))
        elif (m := _SIL_END.search(line)) is not None and start is not None:
            silences.append((start, float(m.group(1))))
            start = None
        for m in _TIME.finditer(line):
            decoded = max(decoded, _seconds(m.groups()))
    if start is not None:
        silences.append((start, decoded))
    return decoded, silences


def to_wav(src: Path, dest: Path, cancelled: StopFlag | None = None) -> Path:
    """Decode `src` into a 16 kHz mono 16-bit WAV (what the speaker diarizer reads)."""
    check_input(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    args = [*input_args(src), "-map", "0:a:0", "-vn", "-sn", "-dn", "-ac", "1", "-ar", str(SAMPLE_RATE),
            "-c:a", "pcm_s16le", "-threads", "1", "-f", "wav", "-y", media_arg(dest)]  # fmt: skip
    log = dest.with_suffix(".log")
    if run_ffmpeg(args, log, convert_timeout(None), cancelled) != 0:
        raise PermanentError(f"{src.name}: FFmpeg could not decode the audio for diarization ({last_error(log)})")
    return dest


def plan_cuts(duration: float, target: float, silences: list[tuple[float, float]], window: float) -> list[float]:
    """Cut points every <= `target` seconds, moved back to the longest silence in the `window` before each."""
    cuts: list[float] = []
    last = 0.0
    slack = min(0.5, target * 0.02)  # no cut for a sliver: 600.02 s stays one chunk (callers keep a margin)
    while duration - last > target + slack:
        limit = last + target
        near = [(e - s, (s + e) / 2) for s, e in silences if limit - window <= (s + e) / 2 <= limit and (s + e) / 2 > last]
        cut = max(near)[1] if near else limit
        cuts.append(round(cut, 3))
        last = cut
    return cuts


def split(full: Path, out_dir: Path, cuts: list[float], timeout: float, cancelled: StopFlag | None = None) -> list[Chunk]:
    """Cut a converted file at `cuts` by stream copy (no re-encoding); chunk paths, offsets and durations."""
    listing = out_dir / "chunks.csv"
    args = [*input_args(full), "-map", "0:a:0", "-c", "copy", "-f", "segment",
            "-segment_times", ",".join(f"{c:.3f}" for c in cuts), "-reset_timestamps", "1", "-segment_list",
            media_arg(listing), "-segment_list_type", "csv", "-y", media_arg(out_dir / f"chunk_%04d{full.suffix}")]  # fmt: skip
    log = out_dir / "split.log"
    if run_ffmpeg(args, log, timeout, cancelled) != 0:
        raise RetryableError(f"FFmpeg could not split the converted audio ({last_error(log)})")
    chunks = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        name, start, end = line.rsplit(",", 2)
        chunks.append(Chunk(str(out_dir / name), float(start), float(end) - float(start)))
    return chunks


def convert_timeout(duration: float | None) -> float:
    """Wall-clock budget for one conversion: generous, yet a hung decoder is stopped."""
    return 300.0 + (duration if duration is not None else 6 * 3600.0) * 0.5


def preprocess(src: Path, out_dir: Path, target: float, cancelled: StopFlag | None = None,
               ext: str = CHUNK_EXT) -> Prepared:  # fmt: skip
    """Check, convert to speech Opus (`ext` "ogg") or PCM ("wav") and chunk at silences into `out_dir` (emptied)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    check_input(src)
    # Small files convert in seconds: skip the extra FFmpeg start of a probe and give them a fixed budget.
    duration = probe(src, out_dir, cancelled).duration if src.stat().st_size > PROBE_ABOVE_BYTES else None
    timeout = convert_timeout(duration) if duration is not None else SMALL_FILE_TIMEOUT
    full = out_dir / f"full.{ext}"
    decoded, silences = _full_audio(src, full, timeout, cancelled)
    cuts = plan_cuts(decoded, target, silences, window=min(60.0, target * 0.25))
    if not cuts:
        only = full.rename(out_dir / f"chunk_0000.{ext}")
        return Prepared(decoded, [Chunk(str(only), 0.0, decoded)], silences)
    chunks = split(full, out_dir, cuts, convert_timeout(decoded), cancelled)
    full.unlink()
    return Prepared(decoded, chunks, silences)


def _full_audio(src: Path, full: Path, timeout: float, cancelled: StopFlag | None) -> tuple[float, list[tuple[float, float]]]:
    """`src` as one file of upload (or PCM) audio. Mono Opus at up to 1.5x our bitrate is copied, not encoded again:
    no second generation of loss, and no encoder (10 ms of CPU per second of audio)."""
    copy = full.suffix == f".{CHUNK_EXT}" and is_mono_opus(src)
    decoded, silences = convert(src, full, timeout, cancelled, copy)
    if copy and decoded > 0.0 and full.stat().st_size * 8 > decoded * BITRATE_KBPS * 1500:
        decoded, silences = convert(src, full, timeout, cancelled)  # a high bitrate: encode to keep uploads small
    if decoded <= 0.0:
        raise PermanentError(f"{src.name}: no decodable audio")
    return decoded, silences


def resplit(chunk: Chunk, out_dir: Path, parts: int = 2, cancelled: StopFlag | None = None) -> list[Chunk]:
    """Cut one chunk into `parts` smaller ones (a 413 from the server), offsets kept absolute."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cuts = [round(chunk.duration * i / parts, 3) for i in range(1, parts)]
    pieces = split(Path(chunk.path), out_dir, cuts, convert_timeout(chunk.duration), cancelled)
    return [Chunk(p.path, chunk.offset + p.offset, p.duration) for p in pieces]

