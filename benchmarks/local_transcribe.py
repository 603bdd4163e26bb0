"""Benchmark: Trax's local engine against faster-whisper called by hand, on real and synthetic speech of known text.

    uv run python benchmarks/local_transcribe.py [--models tiny.en,base] [--repeat 2] [--skip-five]

The files are the judge set of benchmarks/speech_sets.py (voices and passages the engine's settings were not tuned
on; ~290 s) and, unless --skip-five, one ~5-minute file of four voices. Each case runs in a fresh process, the model
load included, on the same files with the same model, alternated `--repeat` times:
  (a) faster-whisper sequential `WhisperModel.transcribe`, beam 5 (what Trax ran before);
  (b) faster-whisper `BatchedInferencePipeline`, beam 5, batch 8, its default VAD;
  (c) `trax batch DIR` with the local backend as a user runs it (8 slots), and (d) the same with one slot, every
      task one after another.
Printed per case: wall and CPU seconds (the process and its children, FFmpeg included), the real-time factor
(wall / audio), the pooled word error rate against the known text and the peak RSS of the process.
Goals with tiny.en: (c) wall <= 0.75x (a) and <= 1.15x (b); (c) WER <= (a) WER + 1 point; peak RSS <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.speech_sets import five_minutes, make_set, missing_tools, pooled_wer, seconds_of


def direct_child(model: str, batched: bool, files: list[str]) -> None:
    """(a)/(b) in this process: load the model like Trax does, decode each file; prints {stem: text}."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    whisper = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=len(os.sched_getaffinity(0)))
    engine = BatchedInferencePipeline(whisper) if batched else whisper
    extra = {"batch_size": 8} if batched else {}
    out = {}
    for f in files:
        segments, _info = engine.transcribe(f, beam_size=5, **extra)
        out[Path(f).stem] = " ".join(s.text.strip() for s in segments)
    print(json.dumps(out))


def measured(args: list[str], env: dict[str, str]) -> tuple[float, float, float, str]:
    """Run a process to its end: wall seconds, CPU seconds and peak RSS (MB) of it and its children; its stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read() if proc.stderr else ""
        out.seek(0)
        text = out.read()
    assert proc.returncode in (0,), (proc.returncode, err[-3000:], text[-2000:])
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def run_direct(model: str, batched: bool, files: list[Path], env: dict[str, str]) -> tuple[float, float, float, dict]:
    wall, cpu, rss, out = measured([sys.executable, __file__, "--direct-child", model, str(int(batched)),
                                    *map(str, files)], env)  # fmt: skip
    return wall, cpu, rss, json.loads(out.strip().splitlines()[-1])


def run_trax(model: str, folder: Path, home: Path, workers: int, env: dict[str, str]) -> tuple[float, float, float, dict]:
    trax = Path(sys.executable).parent / "trax"
    args = [str(trax), "batch", str(folder), "--model", model, "--json", "--output", str(home / "out"),
            "--workers", str(workers)]  # fmt: skip
    wall, cpu, rss, _ = measured(args, {**env, "TRAX_HOME": str(home)})
    texts = {p.stem: p.read_text(encoding="utf-8").strip() for p in (home / "out").glob("*.txt")}
    shutil.rmtree(home, ignore_errors=True)
    return wall, cpu, rss, texts


CASES = {"a": "faster-whisper sequential, beam 5", "b": "faster-whisper batched 8, beam 5",
         "c": "trax batch (8 slots)", "d": "trax batch --workers 1"}  # fmt: skip


def one_round(model: str, folder: Path, tmp: Path, env: dict[str, str], i: int) -> dict[str, tuple]:
    """Every case once, in a rotated order so none always runs first."""
    files = sorted(folder.glob("*.wav"))
    order = list(CASES)[i % 4:] + list(CASES)[: i % 4]
    out = {}
    for case in order:
        if case in "ab":
            out[case] = run_direct(model, case == "b", files, env)
        else:
            out[case] = run_trax(model, folder, tmp / f"home-{case}-{i}", 8 if case == "c" else 1, env)
    return out


def report(name: str, texts: dict[str, str], speech: float, rounds: list[dict[str, tuple]]) -> None:
    """One row per case: medians over the rounds, WER of the first round (decoding is deterministic)."""
    print(f"\n{name}: {len(texts)} files, {speech:.0f} s of speech, {len(rounds)} round(s), "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'case':<36} {'wall s':>7} {'CPU s':>7} {'RTF':>6} {'WER':>6} {'peak MB':>8}")
    med = {}
    for case, label in CASES.items():
        wall = statistics.median(r[case][0] for r in rounds)
        cpu = statistics.median(r[case][1] for r in rounds)
        rss = max(r[case][2] for r in rounds)
        wer = pooled_wer(texts, rounds[0][case][3])
        med[case] = (wall, wer)
        print(f"({case}) {label:<32} {wall:7.1f} {cpu:7.1f} {wall / speech:6.3f} {wer:6.1%} {rss:8.0f}")
    (wa, ea), (wb, _), (wc, ec), (wd, _) = (med[c] for c in "abcd")
    print(f"trax (c) / (a): {wc / wa:.2f}x wall (goal <= 0.75x); (c) / (b): {wc / wb:.2f}x (goal <= 1.15x); "
          f"WER (c) - (a): {100 * (ec - ea):+.1f} points (goal <= +1); 8 slots / 1 slot: {wc / wd:.2f}x wall")  # fmt: skip


def main() -> None:
    """Build the files, run every case `--repeat` times per model, print the tables."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-five", action="store_true")
    args = parser.parse_args()
    if missing := missing_tools():
        sys.exit(f"needs {', '.join(missing)}: apt-get install -y espeak-ng sox festival festvox-kallpc16k "
                 "festvox-kdlpc16k festvox-us-slt-hts alsa-utils")  # fmt: skip
    from tests.fakes.models import multilingual_base, tiny_en

    folders = {"tiny.en": tiny_en, "base": multilingual_base}
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "TRAX_TRANSCRIBE_MODEL")}
    env.update({"TRAX_BACKEND": "local", "HF_HUB_OFFLINE": "1"})
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sets = {"judge set": (tmp / "judge", make_set(tmp / "judge", "judge"))}
        if not args.skip_five:
            path, text = five_minutes(tmp / "five")
            sets["5-minute file"] = (tmp / "five", {path.stem: text})
        for name in args.models.split(","):
            model = str(folders[name]())
            for label, (folder, texts) in sets.items():
                speech = sum(seconds_of(f) for f in folder.glob("*.wav"))
                rounds = [one_round(model, folder, tmp, env, i) for i in range(args.repeat)]
                report(f"{name}, {label}", texts, speech, rounds)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--direct-child":
        direct_child(sys.argv[2], sys.argv[3] == "1", sys.argv[4:])
    else:
        main()
