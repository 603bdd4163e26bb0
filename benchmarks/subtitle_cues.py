"""Subtitle cues for long segments without timed words (a text-only model's chunk, a translated segment).

Run: uv run python benchmarks/subtitle_cues.py [--words 1000 5000 20000] [--repeat 3]

Each segment is generated (fixed seed): words of 2-9 letters, a sentence end every 8-20 words, a clause end now
and then, spoken at 2.5 words a second. `traxd.outputs.cues` cuts it by its text (the last resort, no silences
known) into cues of at most 160 characters and 7 s. Prints, per size, the cues made and the best and median time
of one call in ms, and the CPU time of all calls.
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from traxd.outputs import cues


def segment(words: int, seed: int = 7) -> dict[str, object]:
    """One segment of `words` words without timings, 2.5 words a second."""
    rng = random.Random(seed)
    out, until_end = [], rng.randint(8, 20)
    for _ in range(words):
        w = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        until_end -= 1
        if until_end == 0:
            w, until_end = w + ".", rng.randint(8, 20)
        elif rng.random() < 0.05:
            w += ","
        out.append(w)
    return {"start": 0.0, "end": words / 2.5, "text": " ".join(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--words", type=int, nargs="+", default=[1_000, 5_000, 20_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{'words':>7} {'cues':>6} {'best ms':>9} {'median ms':>10} {'CPU s':>7}")
    for n in args.words:
        seg = segment(n)
        times, cpu0 = [], time.process_time()
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            made = cues([seg])
            times.append((time.perf_counter() - t0) * 1000)
        cpu = time.process_time() - cpu0
        print(f"{n:>7} {len(made):>6} {min(times):>9.1f} {statistics.median(times):>10.1f} {cpu:>7.2f}")


if __name__ == "__main__":
    main()
