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
from traxd.exports import DEFAULT_FORMATS
from traxd.speakers import NAME_THRESHOLD


def default_home() -> Path:
    """~/Library/Application Support/Trax on macOS, ${XDG_DATA_HOME:-~/.local/share}/trax elsewhere."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "Trax"
    import platformdirs  # here: a TRAX_HOME saves `traxctl status` its import

    return Path(platformdirs.user_data_dir("trax", appauthor=False, roaming=False))


@dataclass(frozen=True)
class Webhook:
    """A URL that gets a signed JSON POST when a job ends; private addresses only when allowed."""

    url: str
    secret: str = field(default="", repr=False)
    allow_private: bool = False


@dataclass(frozen=True)
class WatchFolder:
    """An inbox and the folder its transcripts go to."""

    inbox: Path
    outbox: Path
    word_timestamps: bool | None = None  # None: the setting decides
    diarize: bool | None = None  # speaker labels for this folder's files; None: the setting decides
    translate_to: tuple[str, ...] | None = None  # None: the setting decides; () = none for this folder
    summarize: bool | None = None
    vocabulary: tuple[str, ...] | None = None  # None: the setting decides
    formats: tuple[str, ...] | None = None  # the output formats of this folder's files; None: the setting decides
    active_hours: str | None = None  # this folder's files start only inside this daily window (traxd/schedule.py)

    def options(self) -> dict[str, Any]:
        """The job options this folder sets for its files (over the daemon's)."""
        own = {"word_timestamps": self.word_timestamps, "diarize": self.diarize, "summarize": self.summarize,
               "translate_to": None if self.translate_to is None else list(self.translate_to),
               "vocabulary": None if self.vocabulary is None else list(self.vocabulary),
               "formats": None if self.formats is None else list(self.formats)}  # fmt: skip
        return {k: v for k, v in own.items() if v is not None}


# When a setting is read: once at start-up (a change needs a restart), when each task runs, or when a job is
# queued (it is then one of the job's options, see traxd.joboptions).
START, RUN, JOB = "start", "run", "job"


def _setting(default: Any, env: str | None, read: str, *, secret: bool = False) -> Any:
    """A Settings field with its environment variable and when it is read (ENV and LIVE_FIELDS come from these)."""
    return field(default=default, repr=not secret, metadata={"env": env, "read": read})


@dataclass(frozen=True)
class Settings:
    """Everything Trax can be told; build with load_settings()."""

    home: Path
    database_url: str = _setting("", "TRAX_DATABASE_URL", START)
    watch: tuple[WatchFolder, ...] = ()
    backend: str = _setting("auto", "TRAX_BACKEND", RUN)
    openai_api_key: str | None = _setting(None, "OPENAI_API_KEY", RUN, secret=True)
    openai_base_url: str | None = _setting(None, "OPENAI_BASE_URL", RUN)
    transcribe_model: str = _setting("whisper-1", "TRAX_TRANSCRIBE_MODEL", RUN)
    local_model: str | None = _setting(None, "TRAX_LOCAL_MODEL", RUN)
    local_device: str = _setting("auto", "TRAX_LOCAL_DEVICE", START)  # auto | cpu | cuda (traxd/decoding.py)
    deepseek_api_key: str | None = _setting(None, "DEEPSEEK_API_KEY", RUN, secret=True)
    deepseek_base_url: str = _setting("https://api.deepseek.com", "DEEPSEEK_BASE_URL", RUN)
    enhance_model: str = _setting("deepseek-flash", "TRAX_ENHANCE_MODEL", RUN)
    enhance: bool = _setting(False, "TRAX_ENHANCE", JOB)
    enhance_min_similarity: float = _setting(0.85, "TRAX_ENHANCE_MIN_SIMILARITY", RUN)
    enhance_chunk_chars: int = _setting(6000, "TRAX_ENHANCE_CHUNK_CHARS", RUN)
    diarize: bool = _setting(False, "TRAX_DIARIZE", JOB)
    speakers: int | None = _setting(None, "TRAX_SPEAKERS", JOB)
    min_speakers: int | None = _setting(None, "TRAX_MIN_SPEAKERS", JOB)
    max_speakers: int | None = _setting(None, "TRAX_MAX_SPEAKERS", JOB)
    # measured: benchmarks/voiceprints.py
    speaker_threshold: float = _setting(NAME_THRESHOLD, "TRAX_SPEAKER_THRESHOLD", RUN)
    translate_to: tuple[str, ...] = _setting((), "TRAX_TRANSLATE_TO", JOB)
    translate_chunk_chars: int = _setting(4000, "TRAX_TRANSLATE_CHUNK_CHARS", RUN)
    summarize: bool = _setting(False, "TRAX_SUMMARIZE", JOB)
    summary_chunk_chars: int = _setting(12000, "TRAX_SUMMARY_CHUNK_CHARS", RUN)
    language: str | None = _setting(None, "TRAX_LANGUAGE", JOB)
    # names and rare words: faster-whisper's hotwords locally, the start of the prompt on the API (traxd/vocabulary.py)
    vocabulary: tuple[str, ...] = _setting((), "TRAX_VOCABULARY", JOB)
    word_timestamps: bool = _setting(False, "TRAX_WORD_TIMESTAMPS", JOB)
    # the files written besides NAME.json (always written): traxd/exports.py
    formats: tuple[str, ...] = _setting(DEFAULT_FORMATS, "TRAX_FORMATS", JOB)
    chunk_size: float = _setting(600.0, "TRAX_CHUNK_SIZE", JOB)
    workers: int = _setting(8, "TRAX_WORKERS", START)
    settle_seconds: float = _setting(2.0, "TRAX_SETTLE_SECONDS", START)
    rescan_seconds: float = _setting(60.0, "TRAX_RESCAN_SECONDS", START)
    lease_seconds: float = _setting(30.0, "TRAX_LEASE_SECONDS", START)
    grace_seconds: float = _setting(20.0, "TRAX_GRACE_SECONDS", START)
    synchronous: str = _setting("NORMAL", "TRAX_SYNCHRONOUS", START)
    memory_limit_mb: float = _setting(2048.0, "TRAX_MEMORY_LIMIT_MB", START)
    cpu_limit_percent: float = _setting(90.0, "TRAX_CPU_LIMIT_PERCENT", START)
    api_timeout_seconds: float = _setting(300.0, "TRAX_API_TIMEOUT_SECONDS", RUN)
    max_download_mb: float = _setting(2048.0, "TRAX_MAX_DOWNLOAD_MB", RUN)
    allow_private_urls: bool = _setting(False, "TRAX_ALLOW_PRIVATE_URLS", RUN)
    download_timeout_seconds: float = _setting(60.0, "TRAX_DOWNLOAD_TIMEOUT_SECONDS", RUN)
    task_types: tuple[str, ...] = _setting((), "TRAX_TASK_TYPES", START)
    shared_storage: bool = _setting(False, "TRAX_SHARED_STORAGE", START)
    log_level: str = _setting("info", "TRAX_LOG_LEVEL", START)
    # Told when a job ends (traxd/notify.py): Apprise URLs and "desktop", and webhooks (config.toml's list plus
    # the one of TRAX_WEBHOOK_URL). URLs may hold tokens: they are secrets like the keys.
    notify: tuple[str, ...] = _setting((), "TRAX_NOTIFY", RUN, secret=True)
    webhooks: tuple[Webhook, ...] = _setting((), None, RUN, secret=True)
    webhook_url: str | None = _setting(None, "TRAX_WEBHOOK_URL", RUN, secret=True)
    webhook_secret: str | None = _setting(None, "TRAX_WEBHOOK_SECRET", RUN, secret=True)
    webhook_allow_private: bool = _setting(False, "TRAX_WEBHOOK_ALLOW_PRIVATE", RUN)
    # OpenAI's transcription API served from the queue (traxd/serve): "[HOST:]PORT"; beyond loopback a token.
    serve: str | None = _setting(None, "TRAX_SERVE", START)
    serve_token: str | None = _setting(None, "TRAX_SERVE_TOKEN", START, secret=True)
    serve_max_upload_mb: float = _setting(2048.0, "TRAX_SERVE_MAX_UPLOAD_MB", START)
    serve_max_queue: int = _setting(100, "TRAX_SERVE_MAX_QUEUE", START)  # queued requests beyond this: 429
    # model names a client may ask for -> the model they mean ("whisper-1=small"); any other name: the configured one
    serve_models: tuple[str, ...] = _setting((), "TRAX_SERVE_MODELS", START)
    # uploads of finished requests are removed this long after their last use (failed ones are kept for a retry)
    serve_keep_uploads_hours: float = _setting(24.0, "TRAX_SERVE_KEEP_UPLOADS_HOURS", START)
    # When this machine starts work (README, "Power, heat and quiet hours"): traxd/power.py, traxd/schedule.py.
    run_on: str = _setting("always", "TRAX_RUN_ON", START)
    active_hours: str | None = _setting(None, "TRAX_ACTIVE_HOURS", START)
    power_supply: str | None = _setting(None, "TRAX_POWER_SUPPLY", START)  # a folder shaped like /sys/class/power_supply
    thermal_dir: str | None = _setting(None, "TRAX_THERMAL_DIR", START)  # a folder shaped like /sys/class/thermal
    # launchd's ProcessType for `traxctl service install` (Background also lowers systemd's CPU and I/O priority)
    process_type: str = _setting("Standard", "TRAX_PROCESS_TYPE", START)

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
        hooks = [v for h in self.hooks for v in (h.url, h.secret)]
        urls = [u for u in self.notify if "://" in u]  # Apprise URLs carry tokens; "desktop" is only a word
        return (self.openai_api_key, self.deepseek_api_key, self.serve_token, *urls, *hooks)

    @property
    def hooks(self) -> tuple[Webhook, ...]:
        """Every webhook: config.toml's, then TRAX_WEBHOOK_URL's (with TRAX_WEBHOOK_SECRET)."""
        env = () if not self.webhook_url else (Webhook(self.webhook_url, self.webhook_secret or "",
                                                        self.webhook_allow_private),)  # fmt: skip
        return self.webhooks + env

    @property
    def serve_model_map(self) -> dict[str, str]:
        """serve_models as name -> model."""
        return dict(item.split("=", 1) for item in self.serve_models)

    @property
    def effective_backend(self) -> str:
        """`auto` resolved: openai when an OpenAI key is set, else local."""
        if self.backend != "auto":
            return self.backend
        return "openai" if self.openai_api_key else "local"


# Derived from the declarations above: the environment variable of each setting, and the settings a running
# daemon takes from a changed config.toml without a restart (those read when a task runs or a job is queued).
ENV = {f.metadata["env"]: f.name for f in fields(Settings) if f.metadata.get("env")}
LIVE_FIELDS = tuple(f.name for f in fields(Settings) if f.metadata.get("read") in (RUN, JOB))
JOB_FIELDS = tuple(f.name for f in fields(Settings) if f.metadata.get("read") == JOB)
BACKENDS = ("auto", "openai", "local")
PROCESS_TYPES = ("Background", "Standard", "Adaptive", "Interactive")  # launchd.plist(5)
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
        if name == "vocabulary":
            return _terms(raw)
        if name == "webhooks":
            return _parse_webhooks(raw)
        if name == "notify":
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(s).strip() for s in items if str(s).strip())
        if name == "formats":
            return _formats(raw, where)
        if name == "serve_models":
            return _model_map(raw)
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


def _model_map(raw: Any) -> tuple[str, ...]:
    """`serve_models` from "whisper-1=small,..." or a TOML table {whisper-1 = "small"}: ("whisper-1=small", …)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    pairs = raw.items() if isinstance(raw, dict) else (str(item).split("=", 1) for item in items)
    out = []
    for pair in pairs:
        name, model = (str(p).strip() for p in pair) if len(pair) == 2 else ("", "")
        if not name or not model:
            raise ValueError(raw)
        out.append(f"{name}={model}")
    return tuple(out)


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


WATCH_KEYS = {"inbox", "outbox", "word_timestamps", "diarize", "translate_to", "summarize", "vocabulary", "formats",
              "active_hours"}


def _formats(raw: Any, where: str) -> tuple[str, ...]:
    """Output formats from "txt,docx" or a list (ConfigError naming where for an unknown one)."""
    from traxd.exports import parse_formats

    if not isinstance(raw, (str, list, tuple)):
        raise TypeError(raw)
    try:
        return parse_formats(raw)
    except UserError as exc:
        raise ConfigError(f"{where}: {exc}") from None


HOOK_KEYS = {"url", "secret", "allow_private"}


def _parse_webhooks(raw: Any) -> tuple[Webhook, ...]:
    """`webhooks = [{ url = "...", secret = "...", allow_private = false }]` in config.toml."""
    if not isinstance(raw, list):
        raise TypeError(raw)
    out = []
    for item in raw:
        if isinstance(item, Webhook):
            out.append(item)
            continue
        if not isinstance(item, dict) or not isinstance(item.get("url"), str) or set(item) - HOOK_KEYS:
            raise ValueError(item)
        out.append(Webhook(item["url"].strip(), str(item.get("secret") or ""), _to_bool(item.get("allow_private", False))))
    return tuple(out)


def _terms(raw: Any) -> tuple[str, ...]:
    """Vocabulary terms from "A, B", a list, or @FILE (UsageError for a file that cannot be read)."""
    from traxd.vocabulary import parse

    if not isinstance(raw, (str, list, tuple)):
        raise TypeError(raw)
    return parse(raw)


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
        codes, summary, terms = item.get("translate_to"), item.get("summarize"), item.get("vocabulary")
        formats, hours = item.get("formats"), item.get("active_hours")
        out.append(WatchFolder(inbox_path, Path(str(given)).expanduser() if given else inbox_path.parent / "outbox",
                               None if words is None else _to_bool(words),
                               None if diarize is None else _to_bool(diarize),
                               None if codes is None else _codes(codes),
                               None if summary is None else _to_bool(summary),
                               None if terms is None else _terms(terms),
                               None if formats is None else _formats(formats, "watch folder formats"),
                               None if hours is None else _window(hours)))  # fmt: skip
    return tuple(out)


def _window(raw: Any) -> str:
    """A daily window as written ("22:00-07:00"), checked (ValueError for a bad one)."""
    from traxd.schedule import parse_window

    if not isinstance(raw, str):
        raise TypeError(raw)
    parse_window(raw)
    return raw.strip()


def _validate_machine(s: Settings) -> None:
    """run_on and active_hours parse (the daemon reads them at start-up)."""
    from traxd.power import parse_run_on
    from traxd.schedule import parse_window

    try:
        parse_run_on(s.run_on)
        if s.active_hours:
            parse_window(s.active_hours)
    except ValueError as exc:
        raise ConfigError(f"{exc} (TRAX_RUN_ON / TRAX_ACTIVE_HOURS or config.toml)") from None
    if s.process_type not in PROCESS_TYPES:
        raise ConfigError(f"process_type must be one of {', '.join(PROCESS_TYPES)}, got {s.process_type!r}")


def _validate(s: Settings) -> None:
    _validate_machine(s)
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
    if s.local_device.strip().lower() not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"local_device must be auto, cpu or cuda, got {s.local_device!r} (TRAX_LOCAL_DEVICE)")
    if s.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(f"synchronous must be NORMAL, FULL or EXTRA, got {s.synchronous!r}")
    if s.serve_max_upload_mb <= 0 or s.serve_max_queue < 1:
        raise ConfigError("serve_max_upload_mb must be greater than 0 and serve_max_queue at least 1")
    if s.serve is not None:
        serve_address(s.serve)


def serve_address(raw: str, default_port: int = 8766) -> tuple[str, int]:
    """(host, port) of "[HOST:]PORT", "HOST" or "[::1]:PORT"; loopback and 8766 when left out (ConfigError)."""
    text = raw.strip()
    host, _, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not host and not port.isdigit():
        host, port = port, ""
    host = host.strip("[]") or "127.0.0.1"
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ConfigError(f"serve address {raw!r}: the port must be a number from 1 to 65535 ([HOST:]PORT)")
    return host, int(port or default_port)


def _validate_speakers(speakers: int | None, low: int | None, high: int | None) -> None:
    """Speaker counts are at least 1, and the minimum is not above the maximum."""
    for name, value in (("speakers", speakers), ("min_speakers", low), ("max_speakers", high)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be at least 1, got {value}")
    if low is not None and high is not None and low > high:
        raise ConfigError(f"min_speakers ({low}) is above max_speakers ({high})")


def with_changes(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields replaced (settings are frozen)."""
    return dataclasses.replace(settings, **changes)
