"""Minimal URL helpers for ingestion (placeholder until the "net" helper's module lands; same names)."""

from __future__ import annotations

import plistlib
import re
from pathlib import Path
from urllib.parse import urlsplit

MEDIA_EXTENSIONS = frozenset(
    ".mp3 .m4a .wav .flac .ogg .oga .opus .aac .wma .aif .aiff .mp4 .m4v .mov .mkv .webm .avi .mpeg .mpg".split()
)
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s<>\"']+")


def classify_url(url: str) -> tuple[str, str]:
    """("youtube"|"download"|"rejected", reason): direct media paths download, other http(s) go to yt-dlp."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https"):
        return "rejected", f"only http and https URLs are accepted, not {parts.scheme or 'a URL without scheme'}:"
    if not parts.hostname:
        return "rejected", "the URL has no host name"
    if Path(parts.path).suffix.lower() in MEDIA_EXTENSIONS:
        return "download", "direct media URL"
    return "youtube", "site URL (yt-dlp)"


def parse_url_file(path: Path | str) -> list[str]:
    """The URLs in a .url (InternetShortcut), .webloc (plist) or .txt file, in order, without duplicates."""
    p = Path(path)
    data = p.read_bytes()
    if p.suffix.lower() == ".webloc":
        urls = _webloc(data)
    elif p.suffix.lower() == ".url":
        urls = [line.split("=", 1)[1].strip() for line in _lines(data) if line.lower().startswith("url=")]
    else:
        urls = [m.group(0).rstrip(".,;)") for line in _lines(data) if not line.startswith("#")
                for m in _URL_RE.finditer(line)]  # fmt: skip
    return list(dict.fromkeys(u for u in urls if u))


def _lines(data: bytes) -> list[str]:
    return [line.strip() for line in data.decode("utf-8", errors="replace").splitlines() if line.strip()]


def _webloc(data: bytes) -> list[str]:
    try:
        value = plistlib.loads(data)
    except (plistlib.InvalidFileException, ValueError):
        return []
    url = value.get("URL") if isinstance(value, dict) else None
    return [str(url)] if url else []
