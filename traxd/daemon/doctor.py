"""`traxctl doctor`: keys present (never shown), FFmpeg, DB at head, folders, permissions, backend."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from traxd.config import Settings
from traxd.daemon.folders import config_path, fs_type, is_network_fs
from traxd.daemon.home import lock_holder
from traxd.db.engine import sqlite_path
from traxd.errors import UserError
from traxd.model_catalog import model_info, model_warning

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report."""

    name: str
    level: str
    detail: str


def run_checks(settings: Settings) -> list[Check]:
    """Every check, in the order they are printed."""
    return [*check_keys(settings), check_backend(settings), check_model(settings), check_ffmpeg(),
            check_database(settings), *check_folders(settings), *check_permissions(settings),
            check_daemon(settings)]  # fmt: skip


def check_keys(s: Settings) -> list[Check]:
    """Whether the API keys are set (the values are never printed)."""
    openai = Check("OpenAI key", OK if s.openai_api_key else (FAIL if s.backend == "openai" else WARN),
                   "set" if s.openai_api_key else "not set (OPENAI_API_KEY or openai_api_key in config.toml)")
    deepseek = Check("DeepSeek key", OK if s.deepseek_api_key else (FAIL if s.enhance else WARN),
                     "set" if s.deepseek_api_key else "not set: enhancement is unavailable (DEEPSEEK_API_KEY)")
    return [openai, deepseek]  # fmt: skip


def check_backend(s: Settings) -> Check:
    """Which transcription backend `auto` resolves to, and whether it can run."""
    backend = s.effective_backend
    if backend == "local" and importlib.util.find_spec("faster_whisper") is None:
        return Check("backend", FAIL, "local, but faster-whisper is not installed (uv sync --extra local, "
                                      "or set OPENAI_API_KEY)")  # fmt: skip
    return Check("backend", OK, f"{backend} (TRAX_BACKEND={s.backend})")


def check_model(s: Settings, today: dt.date | None = None) -> Check:
    """Warn ahead of the configured model's announced shutdown (traxd.model_catalog knows the dates)."""
    if s.effective_backend != "openai":
        return check_local_model(s)
    when = today or dt.date.today()
    warning = model_warning(s.transcribe_model, when)
    if warning is None:
        return Check("model", OK, s.transcribe_model)
    shutdown = model_info(s.transcribe_model).shutdown
    return Check("model", FAIL if shutdown is not None and shutdown <= when else WARN, warning)


def check_local_model(s: Settings) -> Check:
    """The configured local model really loads, from its folder or the cache (doctor never downloads)."""
    from traxd.adapters import local_models
    from traxd.errors import ModelLoadError
    from traxd.handlers.common import DEFAULT_LOCAL_MODEL

    name = s.local_model or DEFAULT_LOCAL_MODEL
    try:
        local_models.load_model(name, download=False, device=s.local_device)
    except ModelLoadError as exc:
        return Check("model", FAIL, str(exc))
    return Check("model", OK, f"local model {name} loads ({local_models.resolve(name, download=False)})")


def check_ffmpeg() -> Check:
    """FFmpeg from imageio-ffmpeg (no system install needed)."""
    try:
        import imageio_ffmpeg

        exe = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError) as exc:
        return Check("ffmpeg", FAIL, f"not found: {exc}")
    return Check("ffmpeg", OK, exe)


def check_database(s: Settings) -> Check:
    """The DB opens and its schema is at the newest revision (nothing is created or changed)."""
    from traxd.database import shipped_head, stored_revision

    path = sqlite_path(s.database_url)
    if path is not None and not path.exists():
        return Check("database", WARN, f"{path} does not exist yet (traxd run creates it)")
    try:
        shown, current = stored_revision(s)
    except UserError as exc:
        return Check("database", FAIL, str(exc))
    head = shipped_head()
    if current != head:
        return Check("database", WARN, f"schema at {current}, newest is {head} (traxd run upgrades it)")
    return Check("database", OK, f"{shown} at {head}")


def check_folders(s: Settings) -> list[Check]:
    """Home, logs, scratch, inboxes (readable, local) and outboxes (writable)."""
    out = []
    for name, path, mode in [("home", s.home, os.W_OK), ("logs", s.logs_dir, os.W_OK), ("scratch", s.tmp_dir, os.W_OK)]:
        out.append(_folder(name, path, mode))
    for w in s.watch:
        check = _folder("inbox", w.inbox, os.R_OK)
        kind = fs_type(w.inbox) if w.inbox.exists() else None
        if check.level == OK and is_network_fs(kind):
            check = Check("inbox", FAIL, f"{w.inbox} is on a network filesystem ({kind}); use a local folder")
        out += [check, _folder("outbox", w.outbox, os.W_OK)]
    return out


def _folder(name: str, path: Path, mode: int) -> Check:
    if not path.is_dir():
        return Check(name, WARN, f"{path} does not exist (traxd run creates it)")
    if not os.access(path, mode | os.X_OK):
        need = "writable" if mode == os.W_OK else "readable"
        return Check(name, FAIL, f"{path} is not {need} by this user")
    return Check(name, OK, str(path))


def check_permissions(s: Settings) -> list[Check]:
    """Home 0700; database and config.toml 0600 (config.toml may hold keys)."""
    out = []
    for name, path, private in [("home mode", s.home, 0o700), ("database mode", sqlite_path(s.database_url), 0o600),
                                ("config mode", config_path(s), 0o600)]:  # fmt: skip
        if path is None or not path.exists():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        level = OK if mode & 0o077 == 0 else (FAIL if name == "config mode" and _has_keys(path) else WARN)
        out.append(Check(name, level, f"{path} is {mode:04o}" + ("" if level == OK else f", should be {private:04o}")))
    return out


def _has_keys(path: Path) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    return "api_key" in text or "api-key" in text


def check_daemon(s: Settings) -> Check:
    """Whether a daemon holds this home's lock."""
    pid = lock_holder(s.home) if s.home.exists() else None
    return Check("daemon", OK, f"running (pid {pid})" if pid else "not running (traxd run, or traxctl service install)")
