"""Peak memory of local decoding by batch size: what the engine's batch-size rule is fitted to.

    uv run python benchmarks/local_memory.py [FILE.wav]

Each case runs in a fresh process (model load included) on one ~100 s file and prints the child's peak RSS, for
the packaged tiny.en and the multilingual base model, sequential and batched at 1, 4, 8 and 16.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def child(model: str, path: str, batch: int) -> None:
    """Load, decode once (batch 0 = sequential), print the peak RSS in MB."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    whisper = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=len(os.sched_getaffinity(0)))
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if batch:
        segments, _ = BatchedInferencePipeline(whisper).transcribe(path, language="en", batch_size=batch, beam_size=5)
    else:
        segments, _ = whisper.transcribe(path, language="en", beam_size=5)
    list(segments)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"loaded_mb": round(loaded), "peak_mb": round(peak)}))


def main() -> None:
    """Every model and batch size in its own process."""
    from benchmarks.speech_sets import make_set
    from tests.fakes.models import multilingual_base, tiny_en

    with tempfile.TemporaryDirectory() as tmp:
        path = sys.argv[1] if len(sys.argv) > 1 else None
        if path is None:
            make_set(Path(tmp), "judge")
            path = str(Path(tmp) / "judge-festival-ked.wav")
        for name, folder in (("tiny.en", tiny_en()), ("base", multilingual_base())):
            size = (folder / "model.bin").stat().st_size / 2**20
            for batch in (0, 1, 4, 8, 16):
                out = subprocess.run([sys.executable, __file__, "--child", str(folder), path, str(batch)],
                                     capture_output=True, text=True, check=True)  # fmt: skip
                row = json.loads(out.stdout.strip().splitlines()[-1])
                mode = f"batched {batch}" if batch else "sequential"
                print(f"{name:8} model.bin {size:5.0f} MB  {mode:11}  loaded {row['loaded_mb']:5} MB  "
                      f"peak {row['peak_mb']:5} MB", flush=True)  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
