"""One job's options, built the same way by every entry point (inbox files, `traxctl add`, `trax batch`, the API).

The rule: a job's options are fixed when it is queued. Each is what the entry point was given for this job (a
flag, a watch folder's own setting, an API keyword or payload key), else the setting of that moment (flag >
environment > config.toml > default; the fields marked JOB in traxd.config). A job then means the same thing
whichever daemon claims it and whatever config.toml says by then, and a running daemon's reloaded settings reach
the jobs queued after the reload.

One exception, and the settings that are no job options:
- The transcription model is fixed only when one is given (checked for the backend that will run it and kept
  with that backend). Without one, each task uses the model its machine's backend is configured with when it
  runs, so a model swap (a shut-down model) reaches queued work.
- Keys, base URLs, models of the later stages, timeouts, thresholds and chunk lengths of the DeepSeek stages
  (RUN in traxd.config) are read when each task runs; database, workers, leases and limits at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd import vocabulary
from traxd.config import JOB_FIELDS, Settings
from traxd.errors import UsageError, UserError
from traxd.exports import DEFAULT_FORMATS, parse_formats
from traxd.languages import normalize_language
from traxd.model_catalog import MODELS, is_api_model
from traxd.translate import parse_codes

_FLAGS = ("enhance", "word_timestamps", "diarize", "summarize")
_COUNTS = ("speakers", "min_speakers", "max_speakers")


@dataclass(frozen=True)
class JobOptions:
    """What one job asks for; stored with the job (as_dict) and read by its handlers before the settings."""

    enhance: bool = False
    language: str | None = None
    chunk_size: float = 600.0
    word_timestamps: bool = False
    diarize: bool = False
    speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    translate_to: tuple[str, ...] = ()
    summarize: bool = False
    vocabulary: tuple[str, ...] = ()  # names and rare words (traxd/vocabulary.py), read from a file when queued
    formats: tuple[str, ...] = DEFAULT_FORMATS  # what NAME.* are written in (traxd/exports.py); json always
    model: str | None = None  # None: the model its backend is configured with when each task runs
    backend: str | None = None  # the backend `model` was checked for

    def as_dict(self) -> dict[str, Any]:
        """The stored form: later stages and speaker options only when set, so most jobs' options stay short."""
        out: dict[str, Any] = {"enhance": self.enhance, "language": self.language, "model": self.model,
                               "chunk_size": self.chunk_size, "word_timestamps": self.word_timestamps}  # fmt: skip
        if self.model is not None:
            out["backend"] = self.backend
        if self.diarize:
            out["diarize"] = True
        # Known speaker counts are kept even without diarize: a watch folder that turns it on for its files
        # (its options go over these) then still has the counts of the moment the file was queued.
        out.update({k: getattr(self, k) for k in _COUNTS if getattr(self, k) is not None})
        if self.translate_to:
            out["translate_to"] = list(self.translate_to)
        if self.summarize:
            out["summarize"] = True
        if self.vocabulary:
            out["vocabulary"] = list(self.vocabulary)
        if self.formats != DEFAULT_FORMATS:
            out["formats"] = list(self.formats)  # without the key a job has the default (see formats_of)
        return out


# The names an entry point may give (None = not given): the job fields of the settings, and the model.
OPTION_NAMES = (*JOB_FIELDS, "model")


def job_options(settings: Settings, given: Mapping[str, Any] | None = None) -> JobOptions:
    """The options of a job queued now: each given value (None = not given), else the setting (UsageError if bad)."""
    chosen = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = sorted(set(chosen) - set(OPTION_NAMES))
    if unknown:
        raise UsageError(f"unknown job option {unknown[0]!r} (known: {', '.join(OPTION_NAMES)})")
    values = {name: chosen.get(name, getattr(settings, name)) for name in JOB_FIELDS}
    return JobOptions(**_checked(values), **model_options(settings, chosen.get("model")))


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """The values in their types, or a UsageError naming the option."""
    out: dict[str, Any] = {name: bool(values[name]) for name in _FLAGS}
    language = values["language"]
    if not isinstance(language, str | None):
        raise UsageError(f"language must be a string, got {language!r}")
    try:
        out["language"] = normalize_language(language)
    except UserError as exc:
        raise UsageError(f"language: {exc}") from None
    out["translate_to"] = parse_codes(values["translate_to"])
    out["vocabulary"] = vocabulary.parse(values["vocabulary"])
    out["formats"] = parse_formats(values["formats"])
    out["chunk_size"] = _number("chunk_size", values["chunk_size"], float)
    for name in _COUNTS:
        out[name] = None if values[name] is None else _number(name, values[name], int)
    low, high = out["min_speakers"], out["max_speakers"]
    if low is not None and high is not None and low > high:
        raise UsageError(f"min_speakers ({low}) is above max_speakers ({high})")
    return out


def _number(name: str, value: Any, kind: type[int | float]) -> Any:
    """A positive int or float (a bool or a string is refused: they are mistakes, not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or value != kind(value):
        raise UsageError(f"{name} must be a number greater than 0{' (whole)' if kind is int else ''}, got {value!r}")
    return kind(value)


def formats_of(options: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The formats a queued job's stored options ask for (the default when they name none, as before formats)."""
    return parse_formats((options or {}).get("formats") or DEFAULT_FORMATS)


def model_options(settings: Settings, model: str | None) -> dict[str, Any]:
    """The job options of a model option: none given -> the running backend's configured model decides at run time;
    given -> checked against the backend that will run it (UsageError naming what is accepted) and kept with it."""
    if model is None:
        return {"model": None}
    if not isinstance(model, str):
        raise UsageError(f"model must be a string, got {model!r}")
    name, backend = model.strip(), settings.effective_backend
    if backend == "local":
        name = _local_model(name)
    elif problem := _api_model_problem(name, bool(settings.openai_base_url)):
        raise UsageError(problem)
    return {"model": name, "backend": backend}


def _local_model(name: str) -> str:
    from traxd.adapters import local_models as local

    problem = local.model_problem(name)
    if problem is None:
        folder = local.model_folder(name)
        return str(folder.resolve()) if folder is not None and not name.startswith(local.PACKAGE_PREFIX) else name
    accepted = local.ACCEPTED.format(sizes=", ".join(local.sizes()) or "tiny.en, base, small …")
    if is_api_model(name):
        problem = f"{name!r} is an OpenAI model name but the backend is local"
    raise UsageError(f"--model: {problem}; the local backend takes {accepted} (or set TRAX_BACKEND=openai)")


def _api_model_problem(name: str, custom_server: bool) -> str | None:
    """Why `name` is no model for the API backend: a local folder, or (on OpenAI itself) not one of its models."""
    local = name.startswith(("package:", "/", "~", ".")) or Path(name).expanduser().is_dir()
    if not local and (custom_server or is_api_model(name)):
        return None
    accepted = "any model name the server at OPENAI_BASE_URL offers" if custom_server else ", ".join(MODELS)
    return (f"--model: {name!r} is not an API model; the openai backend takes {accepted} "
            "(a local model size or folder needs TRAX_BACKEND=local)")


__all__ = ["OPTION_NAMES", "JobOptions", "formats_of", "job_options", "model_options"]
