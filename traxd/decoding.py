"""How the local engine decodes — device and compute type, threads, batched or sequential, batch size.

Every number here was measured (benchmarks/local_tuning.py, local_memory.py, local_transcribe.py; the figures are in
docs/benchmarks.md): the settings were ranked on one set of voices and checked on another.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from traxd.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")
BEAM_SIZE = 5  # beam 1 was faster but lost 2-4 WER points on both voice sets, batched and sequential alike
# faster-whisper's batched pipeline cuts the audio at voice activity. Its defaults pad each speech stretch by
# 400 ms; 800 ms kept word ends that 400 ms clipped (tune set, tiny.en: WER 8.5% against 9.2%; longer minimum
# silences merged stretches into fewer, fuller windows and lost words: 9.7-10.4%).
VAD_PARAMETERS = {"speech_pad_ms": 800, "min_silence_duration_ms": 160}
# Where batching starts to pay (local_tuning.py --lengths, tiny.en, three voices, CPU seconds sequential/batched):
# 10 s 2.80/2.67, 20 s 3.99/3.91, 30 s 6.87/4.65, 45 s 8.74/6.58. Up to 20 s the two cost the same, and the
# sequential decoder keeps Whisper's temperature fallback (a retry when a window decodes badly): it decodes those.
BATCH_MIN_SECONDS = 20.0
MAX_BATCH = 8  # 4, 8 and 16 gave the same words; 8 is faster-whisper's default and past it the time stays flat
# Peak RSS per window in a batch grows with the model (benchmarks/local_memory.py on a 688 s file, int8 on the CPU:
# tiny.en, a 72 MB model.bin, +62-68 MB a window; base, 138 MB, +61-116 MB, 87 on average from 1 to 16;
# faster-whisper's README: small, +265 MB a window): about 0.45 MB per MB of model.bin plus 35 MB.
ITEM_MB_PER_MODEL_MB = 0.45
ITEM_MB_FIXED = 35.0
# The decoded audio, its features and the VAD's work, before any batch: 167-222 MB for 688 s of audio.
AUDIO_MB_PER_SECOND = 0.32


@dataclass(frozen=True)
class Device:
    """Where CTranslate2 runs the model and with which number format."""

    name: str
    compute_type: str


def choose_device(asked: str, cuda_devices: int) -> Device:
    """`auto`: CUDA when CTranslate2 sees a device, else the CPU; `cuda` without a device is a configuration error."""
    asked = (asked or "auto").strip().lower()
    if asked not in DEVICES:
        raise ConfigError(f"TRAX_LOCAL_DEVICE must be one of {', '.join(DEVICES)}, got {asked!r}")
    if asked == "cpu" or (asked == "auto" and cuda_devices <= 0):
        return Device("cpu", "int8")  # int8 on the CPU: about twice float32's speed at the same words
    if cuda_devices <= 0:
        raise ConfigError("TRAX_LOCAL_DEVICE=cuda, but CTranslate2 sees no CUDA device; set it to auto or cpu")
    return Device("cuda", "float16")  # the GPU's native half precision; int8 on a GPU needs newer cards


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, e.g. a container's cpuset)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_threads(usable_cores: int) -> int:
    """Threads for the one shared model: every core this process may use (the slots take turns on them)."""
    return max(1, usable_cores)


def batch_size(memory_limit_mb: float, rss_mb: float, model_mb: float, seconds: float = 0.0,
               max_batch: int = MAX_BATCH) -> int:  # fmt: skip
    """The most windows one batch may hold and still keep the process under its memory limit (at least 1)."""
    per_item = ITEM_MB_PER_MODEL_MB * model_mb + ITEM_MB_FIXED
    room = memory_limit_mb - rss_mb - AUDIO_MB_PER_SECOND * seconds
    if room <= per_item:
        return 1
    return max(1, min(max_batch, math.floor(room / per_item)))


def batched(duration: float, batch: int) -> bool:
    """Whether a chunk of `duration` seconds decodes in batches (else sequentially, window after window)."""
    return batch > 1 and duration > BATCH_MIN_SECONDS
