"""Frozen settings: command-line flag > environment > $TRAX_HOME/config.toml > default."""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from traxd.errors import ConfigError, UserError
from traxd.speakers import NAME_THRESHOLD


def default_home() -> Path:
    """~/Library/Application Support/Trax on macOS, ${XDG_DATA_HOME:-~/.local/share}/trax elsewhere."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Trax"
    import platformdirs  # here: a TRAX_HOME saves `traxctl status` its import

    return Path(platformdirs.user_data_dir("trax", appauthor=False, roaming=False))


@dataclass(frozen=True)
class WatchFolder:
    """An inbox and the folder its transcripts go to."""

    inbox: Path
    outbox: Path
    word_timestamps: bool | None = None  # None: the setting decides
    diarize: bool | None = None  # speaker labels for this folder's files; None: the setting decides
    translate_to: tuple[str, ...] | None = None  # None: the setting decides; () = none for this folder
    summarize: bool | None = None

    def options(self) -> dict[str, Any]:
        """The job options this folder sets for its files (over the daemon's)."""
        own = {"word_timestamps": self.word_timestamps, "diarize": self.diarize, "summarize": self.summarize,
               "translate_to": None if self.translate_to is None else list(self.translate_to)}  # fmt: skip
        return {k: v for k, v in own.items() if v is not None}


@dataclass(frozen=True)
class Settings:
    """Everything Trax can be told; build with load_settings()."""

    home: Path
    database_url: str = ""
    watch: tuple[WatchFolder, ...] = ()
    backend: str = "auto"
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    transcribe_model: str = "whisper-1"
    local_model: str | None = None
    deepseek_api_key: str | None = field(default=None, repr=False)
    deepseek_base_url: str = "https://api.deepseek.com"
    enhance_model: str = "deepseek-flash"
    enhance: bool = False
    enhance_min_similarity: float = 0.85
    enhance_chunk_chars: int = 6000
    diarize: bool = False
    speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    speaker_threshold: float = NAME_THRESHOLD  # measured: benchmarks/voiceprints.py
    translate_to: tuple[str, ...] = ()
    translate_chunk_chars: int = 4000
    summarize: bool = False
    summary_chunk_chars: int = 12000
    language: str | None = None
    word_timestamps: bool = False
    chunk_size: float = 600.0
    workers: int = 8
    settle_seconds: float = 2.0
    rescan_seconds: float = 60.0
    lease_seconds: float = 30.0
    grace_seconds: float = 20.0
    synchronous: str = "NORMAL"
    memory_limit_mb: float = 2048.0
    cpu_limit_percent: float = 90.0
    api_timeout_seconds: float = 300.0
    max_download_mb: float = 2048.0
    allow_private_urls: bool = False
    download_timeout_seconds: float = 60.0
    task_types: tuple[str, ...] = ()
    shared_storage: bool = False
    log_level: str = "info"

    @property
    def logs_dir(self) -> Path:
        """Where JSON log lines go."""
        return self.home / "logs"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space for chunks and downloads (cleaned at start)."""
        return self.home / "tmp"

    @property
    def secrets(self) -> tuple[str | None, ...]:
        """The API keys: never logged, never written into a service file."""
        return (self.openai_api_key, self.deepseek_api_key)

    @property
    def effective_backend(self) -> str:
        """`auto` resolved: openai when an OpenAI key is set, else local."""
        if self.backend != "auto":
            return self.backend
        return "openai" if self.openai_api_key else "local"


# Environment variables and the setting each feeds.
ENV = {
    "TRAX_DATABASE_URL": "database_url",
    "TRAX_BACKEND": "backend",
    "OPENAI_API_KEY": "openai_api_key",
    "OPENAI_BASE_URL": "openai_base_url",
    "TRAX_TRANSCRIBE_MODEL": "transcribe_model",
    "TRAX_LOCAL_MODEL": "local_model",
    "DEEPSEEK_API_KEY": "deepseek_api_key",
    "DEEPSEEK_BASE_URL": "deepseek_base_url",
    "TRAX_ENHANCE_MODEL": "enhance_model",
    "TRAX_ENHANCE": "enhance",
    "TRAX_ENHANCE_MIN_SIMILARITY": "enhance_min_similarity",
    "TRAX_ENHANCE_CHUNK_CHARS": "enhance_chunk_chars",
    "TRAX_DIARIZE": "diarize",
    "TRAX_SPEAKERS": "speakers",
    "TRAX_MIN_SPEAKERS": "min_speakers",
    "TRAX_MAX_SPEAKERS": "max_speakers",
    "TRAX_SPEAKER_THRESHOLD": "speaker_threshold",
    "TRAX_TRANSLATE_TO": "translate_to",
    "TRAX_TRANSLATE_CHUNK_CHARS": "translate_chunk_chars",
    "TRAX_SUMMARIZE": "summarize",
    "TRAX_SUMMARY_CHUNK_CHARS": "summary_chunk_chars",
    "TRAX_LANGUAGE": "language",
    "TRAX_WORD_TIMESTAMPS": "word_timestamps",
    "TRAX_CHUNK_SIZE": "chunk_size",
    "TRAX_WORKERS": "workers",
    "TRAX_SETTLE_SECONDS": "settle_seconds",
    "TRAX_RESCAN_SECONDS": "rescan_seconds",
    "TRAX_LEASE_SECONDS": "lease_seconds",
    "TRAX_GRACE_SECONDS": "grace_seconds",
    "TRAX_SYNCHRONOUS": "synchronous",
    "TRAX_MEMORY_LIMIT_MB": "memory_limit_mb",
    "TRAX_CPU_LIMIT_PERCENT": "cpu_limit_percent",
    "TRAX_API_TIMEOUT_SECONDS": "api_timeout_seconds",
    "TRAX_MAX_DOWNLOAD_MB": "max_download_mb",
    "TRAX_ALLOW_PRIVATE_URLS": "allow_private_urls",
    "TRAX_DOWNLOAD_TIMEOUT_SECONDS": "download_timeout_seconds",
    "TRAX_TASK_TYPES": "task_types",
    "TRAX_SHARED_STORAGE": "shared_storage",
    "TRAX_LOG_LEVEL": "log_level",
}
BACKENDS = ("auto", "openai", "local")
_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def load_settings(overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Merge defaults, config.toml, environment and flags (non-None overrides) into frozen Settings."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    home = Path(flags.pop("home", None) or env.get("TRAX_HOME") or default_home()).expanduser()
    values: dict[str, Any] = {}
    values.update(_read_toml(home / "config.toml"))
    for var, name in ENV.items():
        if env.get(var) not in (None, ""):
            values[name] = _coerce(name, env[var], f"environment variable {var}")
    for name, raw in flags.items():
        if name not in _FIELD_TYPES:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = _coerce(name, raw, f"option --{name.replace('_', '-')}")
    values.setdefault("database_url", f"sqlite:///{home / 'trax.db'}")
    if "watch" not in values:
        values["watch"] = (WatchFolder(home / "inbox", home / "outbox"),)
    values["language"] = _language(values.get("language"))
    settings = Settings(home=home, **values)
    _validate(settings)
    return settings


def _language(value: str | None) -> str | None:
    """The configured language as the ISO code every backend takes (a name such as "German" is accepted)."""
    from traxd.languages import normalize_language

    try:
        return normalize_language(value)
    except UserError as exc:
        raise ConfigError(f"language: {exc} (TRAX_LANGUAGE or language in config.toml)") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    out: dict[str, Any] = {}
    for key, raw in data.items():
        name = key.replace("-", "_")
        if name not in _FIELD_TYPES or name == "home":
            hint = _closest(name)
            raise ConfigError(f"{path}: unknown key {key!r}" + (f" (did you mean {hint!r}?)" if hint else ""))
        out[name] = _coerce(name, raw, f"{path}: key {key!r}")
    return out


def _closest(name: str) -> str | None:
    import difflib

    match = difflib.get_close_matches(name, list(_FIELD_TYPES), n=1)
    return match[0] if match else None


def _coerce(name: str, raw: Any, where: str) -> Any:
    """Turn a raw value (string from env, TOML value, flag) into the field's type, or say what is wrong."""
    kind = str(_FIELD_TYPES[name])
    try:
        if name == "watch":
            return _parse_watch(raw)
        if name == "translate_to":
            return _codes(raw)
        if name == "task_types":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(s.strip().lower() for s in items if str(s).strip())
        if "bool" in kind:
            return _to_bool(raw)
        if kind.startswith("int"):
            if isinstance(raw, bool):
                raise ValueError
            return int(raw)
        if kind.startswith("float"):
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if isinstance(raw, (dict, list, bool)):
            raise TypeError
        return str(raw)
    except (ValueError, TypeError):
        expected = kind.replace(" | None", "").replace("tuple[str, ...]", "list of strings")
        raise ConfigError(f"{where} must be {expected}, got {raw!r}") from None


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


WATCH_KEYS = {"inbox", "outbox", "word_timestamps", "diarize", "translate_to", "summarize"}


def _codes(raw: Any) -> tuple[str, ...]:
    """Language codes from "de,fr" or a list (UsageError for a bad one)."""
    from traxd.translate import parse_codes

    return parse_codes(raw if isinstance(raw, str) else [str(r) for r in raw])


def _parse_watch(raw: Any) -> tuple[WatchFolder, ...]:
    """`watch = [{inbox = "...", outbox = "..."}]` in TOML, or "inbox=outbox;inbox2=outbox2" in the environment."""
    items: list[Any] = raw if isinstance(raw, list) else [p for p in str(raw).split(";") if p.strip()]
    out = []
    for item in items:
        if isinstance(item, str):
            inbox, _, outbox = item.partition("=")
            item = {"inbox": inbox, "outbox": outbox or None}
        if isinstance(item, WatchFolder):
            out.append(item)
            continue
        if not isinstance(item, dict) or "inbox" not in item or set(item) - WATCH_KEYS:
            raise ValueError(item)
        inbox_path = Path(str(item["inbox"])).expanduser()
        given = item.get("outbox")
        words, diarize = item.get("word_timestamps"), item.get("diarize")
        codes, summary = item.get("translate_to"), item.get("summarize")
        out.append(WatchFolder(inbox_path, Path(str(given)).expanduser() if given else inbox_path.parent / "outbox",
                               None if words is None else _to_bool(words),
                               None if diarize is None else _to_bool(diarize),
                               None if codes is None else _codes(codes),
                               None if summary is None else _to_bool(summary)))  # fmt: skip
    return tuple(out)


def _validate(s: Settings) -> None:
    if s.backend not in BACKENDS:
        raise ConfigError(f"backend {s.backend!r} is not one of {', '.join(BACKENDS)} (TRAX_BACKEND)")
    if s.workers < 1:
        raise ConfigError(f"workers must be at least 1, got {s.workers}")
    for name in ("chunk_size", "settle_seconds", "lease_seconds", "memory_limit_mb", "cpu_limit_percent"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0, got {getattr(s, name)}")
    if not 0.0 < s.enhance_min_similarity <= 1.0:
        raise ConfigError(f"enhance_min_similarity must be in (0, 1], got {s.enhance_min_similarity}")
    for name in ("enhance_chunk_chars", "translate_chunk_chars", "summary_chunk_chars", "download_timeout_seconds",
                 "max_download_mb"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be greater than 0, got {getattr(s, name)}")
    _validate_speakers(s.speakers, s.min_speakers, s.max_speakers)
    if not 0.0 < s.speaker_threshold <= 1.0:
        raise ConfigError(f"speaker_threshold must be in (0, 1], got {s.speaker_threshold}")
    if s.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"synchronous must be NORMAL, FULL or EXTRA, got {s.synchronous!r}")


def _validate_speakers(speakers: int | None, low: int | None, high: int | None) -> None:
    """Speaker counts are at least 1, and the minimum is not above the maximum."""
    for name, value in (("speakers", speakers), ("min_speakers", low), ("max_speakers", high)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if low is not None and high is not None and low > high:
        raise ConfigError(f"min_speakers ({low}) is above max_speakers ({high})")


def diarize_options(s: Settings) -> dict[str, Any]:
    """The per-job speaker options every entry point stores with its jobs: none unless diarization is asked for."""
    if not s.diarize:
        return {}
    counts = {"speakers": s.speakers, "min_speakers": s.min_speakers, "max_speakers": s.max_speakers}
    return {"diarize": True, **{k: v for k, v in counts.items() if v is not None}}


def with_changes(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields replaced (settings are frozen)."""
    return dataclasses.replace(settings, **changes)
