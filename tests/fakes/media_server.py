"""A loopback HTTP server serving media for the download and yt-dlp tests.

Routes: `/media/NAME` (files given to the server, with Range/If-Range, ETag and HEAD), `/page/NAME.html`
(an HTML page with `<audio src="/media/NAME">` for yt-dlp's html5 extractor), `/embed?src=URL` (a page whose <audio> points anywhere), `/redirect/N/NAME` (N hops of
302 before `/media/NAME`), `/to?url=…` (one 302 to any URL), `/status/CODE` (that status, Retry-After: 7 for
429/503), `/drop/NAME` (the first request sends half the body and drops the connection; later ones serve it
normally), `/chunked/NAME` (no Content-Length). Every request is recorded with its headers.
"""

from __future__ import annotations

import html
import mimetypes
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import imageio_ffmpeg
import pytest


@dataclass
class Hit:
    """One request the server saw."""

    method: str
    path: str
    headers: dict[str, str]


def make_tone(path: Path, seconds: float = 2.0, freq: int = 440) -> Path:
    """Generate a mono sine tone with the FFmpeg binary from imageio-ffmpeg (format from the suffix)."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency={freq}:duration={seconds}",
        "-ac",
        "1",
        "-ar",
        "16000",
        str(path),
    ]
    subprocess.run(cmd, check=True, timeout=60)  # fmt: skip
    return path


class MediaServer:
    """Start with `with MediaServer({"tone.wav": data}) as srv:`; `srv.url("/media/tone.wav")`."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.files: dict[str, bytes] = dict(files or {})
        self.hits: list[Hit] = []
        self.dropped: set[str] = set()
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        """http://127.0.0.1:PORT"""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        """An absolute URL on this server."""
        return self.base + path

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, prefix: str = "") -> list[Hit]:
        """Recorded requests whose path starts with `prefix`."""
        with self._lock:
            return [h for h in self.hits if h.path.startswith(prefix)]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        srv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two sends: no delayed-ACK stall between them

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                srv._route(self, head=False)

            def do_HEAD(self) -> None:
                srv._route(self, head=True)

        return Handler

    def _route(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        with self._lock:
            self.hits.append(Hit(h.command, h.path, {k.lower(): v for k, v in h.headers.items()}))
        parts = urlsplit(h.path)
        kind, _, rest = parts.path.lstrip("/").partition("/")
        if kind == "media":
            self._send_file(h, rest, head)
        elif kind == "page":
            self._send_page(h, rest.removesuffix(".html"))
        elif kind == "embed":
            self._send_page(h, "embedded", src=parse_qs(parts.query)["src"][0])
        elif kind == "redirect":
            hops, _, name = rest.partition("/")
            target = f"/redirect/{int(hops) - 1}/{name}" if int(hops) > 1 else f"/media/{name}"
            _send(h, 302, b"", {"location": target})
        elif kind == "to":
            _send(h, 302, b"", {"location": parse_qs(parts.query)["url"][0]})
        elif kind == "status":
            extra = {"retry-after": "7"} if rest in ("429", "503") else {}
            _send(h, int(rest), f"status {rest}".encode(), extra)
        elif kind == "drop":
            self._send_drop(h, rest, head)
        elif kind == "chunked":
            self._send_chunked(h, rest)
        else:
            _send(h, 404, b"not found")

    def _send_file(self, h: BaseHTTPRequestHandler, name: str, head: bool) -> None:
        data = self.files.get(name)
        if data is None:
            _send(h, 404, b"not found")
            return
        etag = f'"{len(data)}-{hash(data) & 0xFFFFFF:x}"'
        headers = {"content-type": _ctype(name), "accept-ranges": "bytes", "etag": etag}
        wanted = h.headers.get("range")
        if_range = h.headers.get("if-range")
        if wanted and (not if_range or if_range == etag):
            self._send_range(h, data, wanted, headers, head)
            return
        _send(h, 200, data, headers, head)

    def _send_range(self, h: BaseHTTPRequestHandler, data: bytes, wanted: str, headers: dict[str, str],
                    head: bool) -> None:  # fmt: skip
        first_s, _, last_s = wanted.removeprefix("bytes=").partition("-")
        first = int(first_s)
        last = int(last_s) if last_s else len(data) - 1
        if first >= len(data):
            _send(h, 416, b"", {"content-range": f"bytes */{len(data)}"})
            return
        headers["content-range"] = f"bytes {first}-{last}/{len(data)}"
        _send(h, 206, data[first : last + 1], headers, head)

    def _send_page(self, h: BaseHTTPRequestHandler, name: str, src: str | None = None) -> None:
        title = html.escape(f"Episode {name}: Q&A / über")
        body = (f"<!DOCTYPE html><html><head><title>{title}</title>"
                f'<meta property="og:title" content="{title}"><meta property="og:description" content="A test page">'
                f'</head><body><h1>{title}</h1><audio controls src="{html.escape(src or f"/media/{name}")}"></audio></body></html>')  # fmt: skip
        _send(h, 200, body.encode(), {"content-type": "text/html; charset=utf-8"})

    def _send_drop(self, h: BaseHTTPRequestHandler, name: str, head: bool) -> None:
        """First GET: announce the full length, send half, close. Later requests: a normal file (with Range)."""
        data = self.files.get(name, b"")
        with self._lock:
            first_time = name not in self.dropped and not head and not h.headers.get("range")
            if first_time:
                self.dropped.add(name)
        if not first_time:
            self._send_file(h, name, head)
            return
        h.send_response(200)
        h.send_header("content-type", _ctype(name))
        h.send_header("content-length", str(len(data)))
        h.send_header("accept-ranges", "bytes")
        h.end_headers()
        h.wfile.write(data[: len(data) // 2])
        h.wfile.flush()
        h.close_connection = True

    def _send_chunked(self, h: BaseHTTPRequestHandler, name: str) -> None:
        data = self.files.get(name, b"")
        h.send_response(200)
        h.send_header("content-type", _ctype(name))
        h.send_header("transfer-encoding", "chunked")
        h.end_headers()
        for i in range(0, len(data), 4096):
            piece = data[i : i + 4096]
            h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        h.wfile.write(b"0\r\n\r\n")


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (size cap, cancel) are expected: no tracebacks on stderr."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return


def _ctype(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None,
          head: bool = False) -> None:  # fmt: skip
    h.send_response(status)
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.send_header("content-length", str(len(body)))
    h.end_headers()
    if not head:
        h.wfile.write(body)


# Fixtures, registered as a plugin by tests/conftest.py.


@pytest.fixture(scope="session")
def media_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Generated once per run: a 3 s WAV, a 3 s MP3 and a 20 s WAV (about 640 KB, for cut-off tests)."""
    folder = tmp_path_factory.mktemp("media")
    return {
        "tone.wav": make_tone(folder / "tone.wav", 3.0).read_bytes(),
        "tone.mp3": make_tone(folder / "tone.mp3", 3.0, 660).read_bytes(),
        "long.wav": make_tone(folder / "long.wav", 20.0, 330).read_bytes(),
    }


@pytest.fixture
def media_server(media_files: dict[str, bytes]) -> Any:
    """A MediaServer on 127.0.0.1 serving the generated files."""
    with MediaServer(media_files) as srv:
        yield srv
