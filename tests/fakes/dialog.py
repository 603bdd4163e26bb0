"""Spoken dialogs made at test time: espeak-ng voices joined by sox, with the true speaker turns."""

from __future__ import annotations

import subprocess
from pathlib import Path

# Voices espeak-ng makes distinct enough to tell apart: a male US voice, a female British one, a male Scottish one.
MALE_US = "en-us+m3"
FEMALE_GB = "en-gb+f4"
THIRD = "en-gb-x-rp+m1"  # a third voice the clustering tells apart (the Scottish m7 was merged with m3)
RATE = 16000

LINES = (
    "Good morning, thank you for coming in today to talk about the budget for next year.",
    "Thanks for having me. I have read the proposal and I have a few questions about the travel costs.",
    "Of course. The travel line went up because the team will visit three new customers in the spring.",
    "That makes sense, but could we hold some of those meetings online and save part of that money?",
    "We tried that last year and lost two contracts, so the sales people asked to meet in person again.",
    "All right. Then let us keep the travel money and look for savings in the software licences instead.",
    "I can ask the vendors for a discount if we sign for three years instead of one.",
    "Please do, and send me their answers before the end of the month so we can decide together.",
)


def say(voice: str, text: str, path: Path) -> Path:
    """One utterance as a 16 kHz mono WAV (espeak-ng writes 22 kHz; sox resamples)."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "160", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path)], check=True, capture_output=True)
    raw.unlink()
    return path


def seconds(path: Path) -> float:
    """The length of an audio file (soxi)."""
    return float(subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout)


def dialog(folder: Path, turns: list[tuple[str, str]], gap: float = 0.7, name: str = "dialog.wav"
           ) -> tuple[Path, list[tuple[float, float, str]]]:  # fmt: skip
    """The turns (voice, text) spoken in order with `gap` seconds of silence; the WAV and the true (start, end, voice)."""
    folder.mkdir(parents=True, exist_ok=True)
    pieces: list[Path] = []
    truth: list[tuple[float, float, str]] = []
    at = 0.0
    for i, (voice, text) in enumerate(turns):
        piece = say(voice, text, folder / f".turn-{i}.wav")
        length = seconds(piece)
        truth.append((round(at, 3), round(at + length, 3), voice))
        at += length + gap
        pieces.append(piece)
    out = folder / name
    _join(pieces, gap, out)
    for piece in pieces:
        piece.unlink()
    return out, truth


def _join(pieces: list[Path], gap: float, out: Path) -> None:
    """sox: every piece then `gap` seconds of silence, concatenated."""
    padded = []
    for piece in pieces:
        target = piece.with_suffix(".pad.wav")
        subprocess.run(["sox", str(piece), str(target), "pad", "0", f"{gap}"], check=True, capture_output=True)
        padded.append(target)
    subprocess.run(["sox", *[str(p) for p in padded], str(out)], check=True, capture_output=True)
    for target in padded:
        target.unlink()


def two_voices(folder: Path, lines: int = 8) -> tuple[Path, list[tuple[float, float, str]]]:
    """A two-person conversation, the voices taking turns."""
    voices = (MALE_US, FEMALE_GB)
    return dialog(folder, [(voices[i % 2], LINES[i % len(LINES)]) for i in range(lines)])
