"""Diarization benchmark: real-time factor, peak RSS and diarization error rate of the local diarizer (the extra).

    uv sync --extra diarize && uv run python benchmarks/diarize.py [--long-turns 40] [--threads 2]

The synthetic dialog set is spoken by espeak-ng voices and joined by sox (tests/fakes/dialog.py): two voices
(8 turns), three voices (8 turns), one voice (6 turns) and a long two-voice conversation of `--long-turns` turns.
Each file is diarized once by the same model (loaded once, load time reported apart). RTF = seconds of audio per
second of work (higher is faster); CPU s is the process's CPU time (all threads), which a shared machine inflates
less than the wall time, and the load average is printed before and after. DER uses a 0.25 s collar and the best
speaker mapping, over all files. Goals: >= 5x real time on 2 cores, peak RSS <= 1.5 GB, DER <= 15%.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes import dialog
from traxd.speakers import Turn, der, relabel

GOAL_RTF, GOAL_RSS_MB, GOAL_DER = 5.0, 1500.0, 0.15


def dialogs(folder: Path, long_turns: int) -> dict[str, tuple[Path, list[Turn]]]:
    """The synthetic set: name -> (WAV, true turns)."""
    two = (dialog.MALE_US, dialog.FEMALE_GB)
    three = (*two, dialog.THIRD)
    specs = {
        "two voices": [(two[i % 2], dialog.LINES[i]) for i in range(8)],
        "three voices": [(three[i % 3], dialog.LINES[i]) for i in range(8)],
        "one voice": [(dialog.MALE_US, line) for line in dialog.LINES[:6]],
        "long two voices": [(two[i % 2], dialog.LINES[i % len(dialog.LINES)]) for i in range(long_turns)],
    }
    out = {}
    for i, (name, turns) in enumerate(specs.items()):
        wav, truth = dialog.dialog(folder / str(i), turns)
        out[name] = (wav, [Turn(a, b, v) for a, b, v in truth])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--long-turns", type=int, default=40, help="turns of the long dialog (~6 s each)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    from traxd.adapters.diarize_local import LocalDiarizer

    with tempfile.TemporaryDirectory(prefix="trax-diarize-bench-") as tmp:
        files = dialogs(Path(tmp), args.long_turns)
        loadavg = os.getloadavg()
        started = time.perf_counter()
        diarizer = LocalDiarizer()
        load = time.perf_counter() - started
        import torch

        torch.set_num_threads(args.threads)
        rows, audio_total, work_total, errors, speech = [], 0.0, 0.0, 0.0, 0.0
        for name, (wav, truth) in files.items():
            seconds = dialog.seconds(wav)
            t0, c0 = time.perf_counter(), time.process_time()
            found = relabel(diarizer.diarize(wav))
            work, cpu = time.perf_counter() - t0, time.process_time() - c0
            rate = der(truth, found.turns, collar=0.25)
            talk = sum(t.end - t.start for t in truth)
            audio_total, work_total = audio_total + seconds, work_total + work
            errors, speech = errors + rate * talk, speech + talk
            rows.append({"file": name, "audio_s": round(seconds, 1), "work_s": round(work, 2), "cpu_s": round(cpu, 2),
                         "rtf": round(seconds / work, 2), "speakers_true": len({t.speaker for t in truth}),
                         "speakers_found": len({t.speaker for t in found.turns}), "der": round(rate, 4)})  # fmt: skip
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"load average before: {' '.join(f'{x:.2f}' for x in loadavg)}; "
          f"after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min; {os.cpu_count()} cores)")  # fmt: skip
    _report(rows, load, audio_total / work_total, peak_mb, errors / speech, args.threads)


def _report(rows: list[dict], load: float, rtf: float, peak_mb: float, overall_der: float, threads: int) -> None:
    print(f"model load: {load:.1f} s (once per process); torch threads: {threads}")
    print(f"{'file':<16} {'audio s':>8} {'work s':>8} {'CPU s':>7} {'x real time':>12} {'speakers':>9} {'DER':>7}")
    for r in rows:
        who = f"{r['speakers_found']}/{r['speakers_true']}"
        print(f"{r['file']:<16} {r['audio_s']:>8.1f} {r['work_s']:>8.2f} {r['cpu_s']:>7.2f} {r['rtf']:>12.2f} {who:>9} "
              f"{r['der']:>7.1%}")  # fmt: skip
    print(f"overall: {rtf:.2f}x real time (goal >= {GOAL_RTF:g}x: {'met' if rtf >= GOAL_RTF else 'NOT met'}); "
          f"peak RSS {peak_mb:.0f} MB (goal <= {GOAL_RSS_MB:g}: {'met' if peak_mb <= GOAL_RSS_MB else 'NOT met'}); "
          f"DER {overall_der:.1%} (goal <= {GOAL_DER:.0%}: {'met' if overall_der <= GOAL_DER else 'NOT met'})")  # fmt: skip
    print(json.dumps({"load_s": round(load, 2), "rtf": round(rtf, 2), "peak_rss_mb": round(peak_mb),
                      "der": round(overall_der, 4), "files": rows}))  # fmt: skip


if __name__ == "__main__":
    main()
