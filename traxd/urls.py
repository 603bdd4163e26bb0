"""Pure: what counts as a URL, which stage it starts at, and URL files (.url, .webloc, .txt); the media extensions.

The one URL classifier of every entry point (inbox, `traxctl add`, `trax batch`, the API: all through
`traxd.ingest`); it stays a bottom-layer module because the download adapter and handler check URLs with it too.

`classify_url(url)` returns a `UrlClass(kind, reason)`: "youtube" (any site page: yt-dlp extracts the media),
"download" (a direct media URL: the path ends with a media extension) or "rejected" (not http/https, no host,
malformed). Rejected URLs are still queued, as a DOWNLOAD task (see `task_type_for`), whose handler fails them
permanently with the same reason, so the user sees them as failed tasks instead of silently dropped lines.
"""

from __future__ import annotations

import configparser
import plistlib
import re
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from traxd.errors import UserError
from traxd.types import TaskType

ALLOWED_SCHEMES = ("http", "https")
# The one list of audio/video extensions (lower case, no dot): a file with another one is not an input, and a URL
# whose path ends with one is fetched directly instead of through yt-dlp.
MEDIA_EXTENSIONS = frozenset({
    "3g2", "3gp", "aac", "ac3", "aif", "aifc", "aiff", "amr", "ape", "asf", "au", "avi", "caf", "dv", "f4a", "f4v",
    "flac", "flv", "m2ts", "m4a", "m4b", "m4v", "mka", "mkv", "mov", "mp2", "mp3", "mp4", "mpeg", "mpg", "mpga",
    "mts", "mxf", "oga", "ogg", "ogv", "opus", "qt", "ts", "vob", "wav", "weba", "webm", "wma", "wmv", "wv",
})  # fmt: skip
URL_FILE_SUFFIXES = (".url", ".webloc", ".txt")
# Anything that names a scheme: "https://…", "file:///…", "ftp://…", "mailto:x" is not a line we queue.
_URL_LINE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$")


class UrlClass(NamedTuple):
    """What a URL is: kind in {"youtube", "download", "rejected"} and, when rejected, why."""

    kind: str
    reason: str | None = None


def classify_url(url: str) -> UrlClass:
    """Decide the first stage of a URL: a site (yt-dlp), a direct media file (httpx), or rejected with a reason."""
    reason = url_problem(url)
    if reason:
        return UrlClass("rejected", reason)
    suffix = PurePosixPath(unquote(urlsplit(url.strip()).path)).suffix.lower().lstrip(".")
    return UrlClass("download" if suffix in MEDIA_EXTENSIONS else "youtube")


def url_problem(url: str) -> str | None:
    """Why a URL cannot be fetched at all (scheme, host, shape), or None when it may be tried."""
    text = url.strip()
    if not text or any(c.isspace() or ord(c) < 32 for c in text):
        return f"not a valid URL: {url!r}"
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"not a valid URL {text!r}: {exc}"
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = (f"{scheme}://" if "://" in text else f"{scheme}:") if scheme else "no scheme"
        return f"unsupported URL scheme ({shown}) in {text!r}: only http and https are accepted"
    if not parts.hostname:
        return f"URL has no host: {text!r}"
    return None


def looks_like_url(text: str) -> bool:
    """`scheme://...` (any scheme: unsupported ones are recorded as rejected, not mistaken for paths)."""
    head, sep, _ = text.partition("://")
    return bool(sep) and head.replace("+", "").replace(".", "").replace("-", "").isalnum()


def task_type_for(kind: str) -> TaskType:
    """The first task of a URL job: YOUTUBE for sites, DOWNLOAD for direct media and rejected URLs."""
    return TaskType.YOUTUBE if kind == "youtube" else TaskType.DOWNLOAD


def is_url_file(path: Path) -> bool:
    """True when the name says this may hold URLs (.url, .webloc, .txt)."""
    return path.suffix.lower() in URL_FILE_SUFFIXES


def parse_url_file(path: Path | str) -> list[str]:
    """The URLs in a .url, .webloc or .txt file, in order, without duplicates; UserError when malformed."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".webloc":
        urls = _parse_webloc(path)
    elif suffix == ".url":
        urls = _parse_internet_shortcut(path)
    elif suffix == ".txt":
        urls = _parse_text_lines(path)
    else:
        raise UserError(f"{path.name}: not a URL file (expected .url, .webloc or .txt)")
    return list(dict.fromkeys(u.strip() for u in urls if u and u.strip()))


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path.name}: not a UTF-8 text file") from None


def _parse_text_lines(path: Path) -> list[str]:
    """One URL per line; blank lines and # comments are skipped, and so is prose that names no scheme."""
    lines = (line.strip() for line in _read_text(path).splitlines())
    return [line for line in lines if line and not line.startswith("#") and _URL_LINE.match(line)]


def _parse_internet_shortcut(path: Path) -> list[str]:
    """Windows InternetShortcut: `[InternetShortcut]` then `URL=…`."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(_read_text(path))
    except configparser.Error as exc:
        raise UserError(f"{path.name}: not an Internet shortcut ({exc.__class__.__name__})") from None
    urls = [parser.get(section, "url") for section in parser.sections() if parser.has_option(section, "url")]
    if not urls:
        raise UserError(f"{path.name}: no URL= line in the Internet shortcut")
    return urls


def _parse_webloc(path: Path) -> list[str]:
    """macOS .webloc: a property list (XML or binary) with a `URL` key."""
    try:
        with path.open("rb") as fh:
            data = plistlib.load(fh)
    except (plistlib.InvalidFileException, ValueError, TypeError) as exc:
        raise UserError(f"{path.name}: not a valid .webloc property list ({exc.__class__.__name__})") from None
    url = data.get("URL") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise UserError(f"{path.name}: the .webloc has no URL")
    return [url]
