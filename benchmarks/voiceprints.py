"""Voice-print scores: same person vs different people, to choose the name-match threshold (`speaker_threshold`).

    uv sync --extra diarize && uv run python benchmarks/voiceprints.py

No recordings of several real people ship with anything installable offline here. The "people" are:
- `alsa`: a real recorded human voice, the channel names in /usr/share/sounds/alsa (alsa-utils; one person, 8 clips
  of 1.3-1.5 s, joined in two halves of ~6 s for the longer prints);
- `kal`, `ked`, `slt`: Festival voices built from recordings of three different real people (two US men as diphone
  voices, a US woman as an HTS voice; Debian: festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts),
  skipped when Festival is missing;
- espeak-ng voices (formant synthesis, the test dialogs' voices), much closer to each other than people are.
Each person says four different sentences; one is the "enrolment", the others the "dialog". A voice print is what
`traxctl speakers enroll` stores: the CAM++ centroid of the sample diarized as one speaker. Every pair of prints
of different sentences is scored (cosine), and the script prints the ranges and the threshold that separates them.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import dialog
from traxd.speakers import NAME_THRESHOLD, cosine

ALSA = Path("/usr/share/sounds/alsa")
FESTIVAL = {"kal": "voice_kal_diphone", "ked": "voice_ked_diphone", "slt": "voice_cmu_us_slt_arctic_hts"}
ESPEAK = {"espeak m3": dialog.MALE_US, "espeak f4": dialog.FEMALE_GB, "espeak rp m1": dialog.THIRD,
          "espeak f2": "en-us+f2"}  # fmt: skip
SENTENCES = dialog.LINES[:4]


def festival(voice: str, text: str, path: Path) -> Path:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["text2wave", "-eval", f"({voice})", "-o", str(raw)], input=text, text=True, check=True,
                   capture_output=True)  # fmt: skip
    return _mono16k(raw, path)


def _mono16k(source: Path, path: Path) -> Path:
    subprocess.run(["sox", str(source), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True, capture_output=True)
    return path


def samples(folder: Path) -> dict[str, list[Path]]:
    """person -> WAVs of different sentences."""
    people: dict[str, list[Path]] = {}
    clips = sorted(p for p in ALSA.glob("*.wav") if p.stem != "Noise")
    if clips:
        halves = [clips[: len(clips) // 2], clips[len(clips) // 2 :]]
        joined = []
        for i, half in enumerate(halves):
            out = folder / f"alsa-half-{i}.wav"
            subprocess.run(["sox", *map(str, half), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
            joined.append(out)
        people["alsa (joined halves)"] = joined
        people["alsa (single clips)"] = [_mono16k(c, folder / f"alsa-{c.stem}.wav") for c in clips]
    if shutil.which("text2wave"):
        for name, voice in FESTIVAL.items():
            people[f"festival {name}"] = [festival(voice, s, folder / f"{name}-{i}.wav") for i, s in enumerate(SENTENCES)]
    for name, voice in ESPEAK.items():
        people[name] = [dialog.say(voice, s, folder / f"{voice}-{i}.wav".replace("+", "_")) for i, s in enumerate(SENTENCES)]
    return people


def main() -> None:
    from traxd.adapters.diarize_local import LocalDiarizer

    diarizer = LocalDiarizer()
    with tempfile.TemporaryDirectory(prefix="trax-voiceprints-") as tmp:
        people = samples(Path(tmp))
        prints = {who: [_print(diarizer, wav) for wav in wavs] for who, wavs in people.items()}
    prints = {who: [p for p in ps if p is not None] for who, ps in prints.items()}
    same = {who: [cosine(a, b) for a, b in itertools.combinations(ps, 2)] for who, ps in prints.items()}
    persons = [who for who in prints if who != "alsa (single clips)"]  # the same person as the joined halves
    other: dict[str, list[float]] = {}
    for a, b in itertools.combinations(persons, 2):
        other[f"{a} / {b}"] = [cosine(x, y) for x in prints[a] for y in prints[b]]
    _report(same, other)


def _print(diarizer: object, wav: Path) -> list[float] | None:
    found = diarizer.diarize(wav, speakers=1)  # type: ignore[attr-defined]
    return next(iter(found.voices.values()), None)


def _report(same: dict[str, list[float]], other: dict[str, list[float]]) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("same person, different sentences (cosine min / mean / max, pairs):")
    for who, scores in same.items():
        if scores:
            print(f"  {who:<28} {min(scores):.3f} / {sum(scores) / len(scores):.3f} / {max(scores):.3f}  ({len(scores)})")
    print("different people (cosine min / mean / max, pairs):")
    for pair, scores in sorted(other.items(), key=lambda kv: -max(kv[1])):
        print(f"  {pair:<40} {min(scores):.3f} / {sum(scores) / len(scores):.3f} / {max(scores):.3f}  ({len(scores)})")
    lowest_same = min(s for scores in same.values() for s in scores)
    highest_other = max(s for scores in other.values() for s in scores)
    real = [s for pair, scores in other.items() if "espeak" not in pair for s in scores]
    print(f"lowest same-person score {lowest_same:.3f}; highest different-people score {highest_other:.3f} "
          f"(without espeak pairs: {max(real) if real else float('nan'):.3f}); threshold in use {NAME_THRESHOLD}")  # fmt: skip


if __name__ == "__main__":
    main()
