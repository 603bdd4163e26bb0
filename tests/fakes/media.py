"""Media made at test time with the FFmpeg binary from PyPI (nothing large is committed)."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import imageio_ffmpeg

from tests.fakes.openai_server import Recorded, default_transcription

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def ffmpeg(*args: str) -> None:
    """Run FFmpeg quietly; raise with its log on failure."""
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-y", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])


def tone(path: Path, seconds: float, freq: int = 440, rate: int = 44100) -> Path:
    """A sine tone (stereo, so conversion to mono is exercised)."""
    ffmpeg("-f", "lavfi", "-i", f"sine=f={freq}:d={seconds}:r={rate}", "-ac", "2", str(path))
    return path


def tones_with_gaps(path: Path, pieces: list[float], gap: float) -> Path:
    """Tones of the given lengths separated by `gap` seconds of silence."""
    inputs: list[str] = []
    labels = []
    for i, seconds in enumerate(pieces):
        inputs += ["-f", "lavfi", "-i", f"sine=f={300 + 100 * i}:d={seconds}:r=16000"]
        labels.append(f"[{2 * i}]")
        if i < len(pieces) - 1:
            inputs += ["-f", "lavfi", "-i", f"anullsrc=r=16000:cl=mono:d={gap}"]
            labels.append(f"[{2 * i + 1}]")
    graph = "".join(labels) + f"concat=n={len(labels)}:v=0:a=1"
    ffmpeg(*inputs, "-filter_complex", graph, str(path))
    return path


def noise(path: Path, seconds: float) -> Path:
    """White noise."""
    ffmpeg("-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=white:a=0.3", str(path))
    return path


def video(path: Path, seconds: float, audio: bool) -> Path:
    """A tiny MPEG-4 video, with or without an audio track."""
    args = ["-f", "lavfi", "-i", f"testsrc=size=64x48:rate=5:d={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=f=500:d={seconds}", "-c:a", "aac", "-shortest"]
    ffmpeg(*args, "-c:v", "mpeg4", str(path))
    return path


def duration_of(data: bytes, suffix: str = ".ogg") -> float:
    """Duration of encoded audio bytes, as FFmpeg reads it from the header."""
    with tempfile.NamedTemporaryFile(suffix=suffix) as fh:
        fh.write(data)
        fh.flush()
        proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", fh.name], capture_output=True, text=True,
                              check=False)  # fmt: skip
    m = re.search(r"Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)", proc.stderr)
    return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3)) if m else 0.0


def media_transcription(req: Recorded) -> dict[str, Any]:
    """The fake server's verbose transcript, spread over the uploaded audio's real duration."""
    duration = duration_of(req.file_bytes, Path(req.file_name or "x.ogg").suffix)
    req.headers["x-fake-duration"] = f"{max(duration, 0.01):.3f}"
    return default_transcription(req)


def spoken(path: Path, sentences: list[str], gap: float = 1.0, speed: int = 160) -> list[tuple[float, float]]:
    """Sentences synthesised with espeak-ng, joined by `gap` seconds of digital silence (sox); the (start, end)
    of each sentence's audio in the joined file. Needs espeak-ng and sox (`.ci/run` installs them)."""
    parts: list[Path] = []
    spans: list[tuple[float, float]] = []
    at = 0.0
    silence = path.with_name(f"{path.stem}-gap.wav")
    subprocess.run(["sox", "-n", "-r", "22050", "-c", "1", "-b", "16", str(silence), "trim", "0", str(gap)], check=True)
    for i, sentence in enumerate(sentences):
        part = path.with_name(f"{path.stem}-{i}.wav")
        subprocess.run(["espeak-ng", "-s", str(speed), "-w", str(part), sentence], check=True)
        seconds = float(subprocess.run(["soxi", "-D", str(part)], capture_output=True, text=True, check=True).stdout)
        spans.append((at, at + seconds))
        at += seconds + gap
        parts += [part, silence] if i < len(sentences) - 1 else [part]
    subprocess.run(["sox", *map(str, parts), str(path)], check=True)
    for part in {*parts}:
        part.unlink()
    return spans
