"""yt-dlp as a library: metadata without downloading, then the audio alone into a folder we choose.

Options are built here from scratch (never from user input), so no `exec`, cookies, plugins or remote
components can be switched on. yt-dlp's own retries are off: the queue is the one retry layer. Files are
named by a fixed template (`audio.EXT`) inside the given folder: a remote title never becomes a path.
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import yt_dlp
from yt_dlp.networking import _urllib as ytdlp_urllib
from yt_dlp.networking.exceptions import HTTPError, TransportError
from yt_dlp.utils import (
    ContentTooShortError,
    DownloadCancelled,
    ExtractorError,
    PostProcessingError,
    YoutubeDLError,
)

from traxd.adapters.download import Resolver, checked_addresses, resolve_host
from traxd.adapters.http_errors import is_retryable_status, retry_after
from traxd.errors import PermanentError, RetryableError, TaskError
from traxd.logging import get_logger
from traxd.types import StopFlag

log = get_logger("ytdlp")
Progress = Callable[[dict[str, Any]], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TooLarge(DownloadCancelled):  # type: ignore[misc]  # yt-dlp ships no type information
    """Raised from the progress hook when more bytes arrive than the cap (yt-dlp checks only announced sizes)."""


class Refused(DownloadCancelled):  # type: ignore[misc]  # yt-dlp ships no type information
    """Raised from the match filter when a media URL may not be fetched (yt-dlp re-raises it without args)."""


UrlCheck = Callable[[str], None]


@dataclass(frozen=True)
class YtdlpLimits:
    """Socket timeout, size cap, where the FFmpeg shim lives, and the address policy of every connection.

    With `allow_private` set (True or False), each socket yt-dlp opens is resolved by `resolve`, checked like a
    direct download, and connected to the checked address (DNS rebinding cannot slip between). None: no policy.
    """

    timeout: float = 60.0
    max_bytes: int | None = None
    ffmpeg_dir: Path | None = None
    allow_private: bool | None = None
    resolve: Resolver = resolve_host


class _Policy(threading.local):
    """The connection policy of the yt-dlp call running on this thread (yt-dlp fetches on the caller's thread)."""

    limits: YtdlpLimits | None = None
    refused: list[TaskError]

    def __init__(self) -> None:
        self.refused = []


_POLICY = _Policy()
_ORIGINAL_CONNECT = getattr(ytdlp_urllib, "create_connection", None)


def _pinned_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
    """yt-dlp's create_connection, but to an address that passed the policy of the call on this thread."""
    assert _ORIGINAL_CONNECT is not None
    limits = _POLICY.limits
    if limits is None or limits.allow_private is None:
        return _ORIGINAL_CONNECT(address, *args, **kwargs)
    host, port = address[0], address[1]
    try:
        addresses = checked_addresses(host, port, limits.allow_private, limits.resolve)
    except TaskError as exc:
        _POLICY.refused.append(exc)
        raise OSError(errno.EACCES, str(exc)) from None
    error: OSError | None = None
    for ip in addresses:
        try:
            return _ORIGINAL_CONNECT((ip, port), *args, **kwargs)
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


if _ORIGINAL_CONNECT is not None:
    # yt-dlp's urllib handler (the one installed with Trax) opens every socket through this module-level name;
    # TLS still verifies the host name, which http.client passes separately.
    ytdlp_urllib.create_connection = _pinned_connection


@contextmanager
def _policy(limits: YtdlpLimits) -> Iterator[list[TaskError]]:
    """Apply `limits`' connection policy to the yt-dlp calls made inside, on this thread; yields the refusals."""
    _POLICY.limits, _POLICY.refused = limits, []
    try:
        yield _POLICY.refused
    finally:
        _POLICY.limits = None


class QuietLogger:
    """yt-dlp's logger interface, routed to structlog so nothing is printed to the daemon's stderr."""

    def debug(self, msg: str) -> None:
        """Dropped: yt-dlp's debug lines are per-request noise."""

    def info(self, msg: str) -> None:
        """Dropped (yt-dlp sends progress lines here)."""

    def warning(self, msg: str) -> None:
        """Kept at debug level: the classified error is what the user sees."""
        log.debug("ytdlp_warning", message=_clean(msg))

    def error(self, msg: str) -> None:
        """Kept at debug level: the exception carries the same message."""
        log.debug("ytdlp_error", message=_clean(msg))


def base_options(limits: YtdlpLimits) -> dict[str, Any]:
    """Options every call uses: quiet, no progress bar, single items, no internal retries."""
    return {
        "quiet": True, "noprogress": True, "no_warnings": False, "logger": QuietLogger(),
        "socket_timeout": limits.timeout, "noplaylist": True, "extract_flat": "in_playlist",
        "retries": 0, "fragment_retries": 0, "extractor_retries": 0, "file_access_retries": 0,
        "restrictfilenames": True, "color": {"stdout": "no_color", "stderr": "no_color"},
        # Every request through the urllib handler, the one whose sockets _pinned_connection checks: with
        # `requests` installed (Apprise brings it) yt-dlp would otherwise prefer its requests handler and connect
        # around the address policy.
        "compat_opts": {"prefer-legacy-http-handler"},
    }  # fmt: skip


def extract_metadata(url: str, limits: YtdlpLimits) -> dict[str, Any]:
    """The JSON-safe info dict of a single item (`extract_info(download=False)` + `sanitize_info`)."""
    with _policy(limits) as refused:
        try:
            with yt_dlp.YoutubeDL(base_options(limits)) as ydl:
                info = ydl.extract_info(url, download=False)
                clean = ydl.sanitize_info(info)
        except YoutubeDLError as exc:
            raise (refused[0] if refused else translate_error(exc, url)) from None
    if not isinstance(clean, dict):
        raise PermanentError(f"yt-dlp found nothing to download at {url}")
    if clean.get("_type") in ("playlist", "multi_video"):
        count = len(clean.get("entries") or [])
        raise PermanentError(f"{url} is a playlist of {count} items; add the items one by one")
    return clean


def ffmpeg_dir(scratch: Path) -> Path:
    """A folder holding `ffmpeg` -> imageio-ffmpeg's binary (yt-dlp's ffmpeg_location takes a folder)."""
    folder = scratch / "ffmpeg-bin"
    link = folder / "ffmpeg"
    if not link.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".ffmpeg.{os.getpid()}.{threading.get_ident()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
        os.replace(tmp, link)
    return folder


def download_audio(
    url: str,
    dest: Path,
    limits: YtdlpLimits,
    *,
    cancelled: StopFlag | None = None,
    on_progress: Progress | None = None,
    check: UrlCheck | None = None,
) -> Path:
    """Download the best audio of `url` as dest/audio.EXT (a .part left by a crash is resumed) and return it.

    `check(url)` vets each media URL yt-dlp chose (a page may point anywhere, e.g. a cloud metadata address)
    before a byte is fetched from it; it raises a TaskError to refuse.
    """
    dest.mkdir(parents=True, exist_ok=True)
    opts = _download_options(dest, limits, cancelled, on_progress)
    refused: list[TaskError] = []
    if check is not None:
        opts["match_filter"] = _media_url_filter(check, refused)
    with _policy(limits) as connects_refused:
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                info = ydl.extract_info(url, download=True)
        except TooLarge as exc:
            _remove_partials(dest)
            raise PermanentError(str(exc)) from None
        except YoutubeDLError as exc:
            if refused or connects_refused:
                raise (refused + connects_refused)[0] from None
            raise translate_error(exc, url) from None
    return _downloaded_path(info, dest, limits)


def _media_url_filter(check: UrlCheck, refused: list[TaskError]) -> Callable[..., str | None]:
    """A yt-dlp match_filter that runs `check` on the chosen format URLs; a refusal is kept in `refused`."""

    def media_filter(info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        formats = info.get("requested_formats") or [info]
        for url in [f.get("url") for f in formats if isinstance(f, dict)]:
            if isinstance(url, str) and url:
                try:
                    check(url)
                except TaskError as exc:
                    refused.append(exc)
                    raise Refused(str(exc)) from None
        return None

    return media_filter


def _remove_partials(dest: Path) -> None:
    """Drop what an over-cap download left (no resume is wanted for a file we refuse)."""
    for path in [*dest.glob("audio.*"), *(dest / "partial").glob("*")]:
        if path.is_file():
            path.unlink(missing_ok=True)


def _download_options(
    dest: Path, limits: YtdlpLimits, cancelled: StopFlag | None, on_progress: Progress | None
) -> dict[str, Any]:
    def hook(status: dict[str, Any]) -> None:
        if cancelled is not None and cancelled.is_set():
            raise DownloadCancelled("the task was cancelled")
        if limits.max_bytes and (status.get("downloaded_bytes") or 0) > limits.max_bytes:
            raise TooLarge(f"download passed the cap of {limits.max_bytes} bytes")
        if on_progress is not None:
            on_progress(status)

    opts = base_options(limits) | {
        "format": "bestaudio/best",
        "paths": {"home": str(dest), "temp": str(dest / "partial")},
        "outtmpl": {"default": "audio.%(ext)s"},
        "progress_hooks": [hook],
        "continuedl": True,
        "overwrites": False,
    }
    if limits.max_bytes:
        opts["max_filesize"] = limits.max_bytes
    if limits.ffmpeg_dir:
        opts["ffmpeg_location"] = str(limits.ffmpeg_dir)
    return opts


def _downloaded_path(info: dict[str, Any] | None, dest: Path, limits: YtdlpLimits) -> Path:
    """The file yt-dlp wrote, checked to be inside dest; a skipped download (over the size cap) is permanent."""
    info = info or {}
    found = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
    existing = [p for p in found if p.is_file()]
    if not existing:
        size = info.get("filesize") or info.get("filesize_approx")
        if limits.max_bytes and size and size > limits.max_bytes:
            raise PermanentError(f"the audio is about {int(size)} bytes, over the download cap of {limits.max_bytes}")
        cap = f"over the download cap of {limits.max_bytes} bytes" if limits.max_bytes else "over the size cap"
        raise PermanentError(f"yt-dlp did not produce an audio file: it is {cap}, or the site offers no audio")
    path = existing[0].resolve()
    if not path.is_relative_to(dest.resolve()):
        raise PermanentError(f"yt-dlp wrote outside its folder: {path}")
    return path


def translate_error(exc: YoutubeDLError, url: str) -> TaskError:
    """Classify a yt-dlp error by the type of the exception it wraps (DownloadError only wraps)."""
    cause = root_cause(exc)
    message = f"{_clean(str(exc))} ({url})"
    if isinstance(cause, HTTPError):
        if is_retryable_status(cause.status):
            headers = getattr(cause.response, "headers", None) or {}
            return RetryableError(message, retry_after=retry_after(headers), http_status=cause.status)
        return PermanentError(message, http_status=cause.status)
    if isinstance(cause, (TooLarge, Refused)):
        return PermanentError(message)
    if isinstance(cause, (TransportError, ContentTooShortError, DownloadCancelled, TimeoutError, ConnectionError)):
        return RetryableError(message)
    if isinstance(cause, (ExtractorError, PostProcessingError)):
        # The site answered and said no (unsupported URL, private, removed, geo-blocked) or the media is broken.
        return PermanentError(message)
    return RetryableError(message)


def root_cause(exc: BaseException) -> BaseException:
    """Follow DownloadError/ExtractorError `exc_info` and `cause` down to the network or extractor error."""
    current = exc
    for _ in range(8):
        if isinstance(current, (HTTPError, TransportError)):
            break  # the network error itself is what we classify
        inner = _wrapped(current)
        if inner is None or inner is current:
            break
        current = inner
    return current


def _wrapped(exc: BaseException) -> BaseException | None:
    info = getattr(exc, "exc_info", None)
    if isinstance(info, tuple) and len(info) > 1 and isinstance(info[1], BaseException):
        return info[1]
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else None


def _clean(message: str) -> str:
    """One line without colour codes or yt-dlp's 'ERROR: ' prefix and bug-report footer."""
    first = _ANSI.sub("", message).strip().splitlines()[0] if message.strip() else "yt-dlp error"
    return first.removeprefix("ERROR: ")[:400]
