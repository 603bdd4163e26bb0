"""A multipart upload read as it arrives: the file part goes straight to disk (hashed on the way), the other fields
are kept as text. A 2 GB upload never sits in memory, and one over the limit is refused as soon as it passes it."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

FIELD_LIMIT = 64 * 1024  # a form field (a prompt, a language) is text; anything bigger is a mistake or an attack


class FormError(Exception):
    """The body is not the multipart form expected (status 400), or it is too large (status 413)."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.param = param


@dataclass
class Upload:
    """The uploaded file on disk: where, its name as sent, its size and SHA-256."""

    path: Path
    filename: str
    size: int
    sha256: str


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


class _Reader:
    """python-multipart's callbacks: fields into `fields`, the one file part into a temporary file in `folder`."""

    def __init__(self, folder: Path, limit: int) -> None:
        self.folder, self.limit = folder, limit
        self.fields: dict[str, list[str]] = {}
        self.upload: Upload | None = None
        self._part = _Part()
        self._header: tuple[bytes, bytes] = (b"", b"")
        self._disposition = b""
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()

    def on_part_begin(self) -> None:
        self._part, self._disposition = _Part(), b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0] + data[start:end], self._header[1])

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header = (self._header[0], self._header[1] + data[start:end])

    def on_header_end(self) -> None:
        if self._header[0].lower() == b"content-disposition":
            self._disposition = self._header[1]
        self._header = (b"", b"")

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise FormError("a form part has no name")
        self._part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            if self.upload is not None or self._file is not None:
                raise FormError("send one file per request", param="file")
            self._part.filename = options[b"filename"].decode("utf-8", "replace")
            self._file = _temporary(self.folder)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._file is None:
            if len(self._part.data) + len(piece) > FIELD_LIMIT:
                raise FormError(f"form field {self._part.name!r} is over {FIELD_LIMIT // 1024} KB", param=self._part.name)
            self._part.data += piece
            return
        if self._file.tell() + len(piece) > self.limit:
            raise FormError(f"the file is over the server's limit of {self.limit // (1024 * 1024)} MB",
                            status=413, param="file")  # fmt: skip
        self._file.write(piece)
        self._hash.update(piece)

    def on_part_end(self) -> None:
        if self._file is None:
            self.fields.setdefault(self._part.name, []).append(self._part.data.decode("utf-8", "replace"))
            return
        self._file.flush()
        size = self._file.tell()
        self._file.close()
        self.upload = Upload(Path(self._file.name), self._part.filename or "", size, self._hash.hexdigest())
        self._file = None

    def discard(self) -> None:
        """Remove what was written (the body broke off, or was refused)."""
        for f in (self._file, self.upload):
            if f is not None:
                Path(f.name if not isinstance(f, Upload) else f.path).unlink(missing_ok=True)
        if self._file is not None:
            self._file.close()


def _temporary(folder: Path) -> IO[bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    return open(folder / f".upload-{secrets.token_hex(8)}.part", "xb")  # closed in on_part_end


async def read_form(content_type: str, body: AsyncIterator[bytes], folder: Path,
                    limit: int) -> tuple[dict[str, list[str]], Upload | None]:  # fmt: skip
    """The fields and the uploaded file (in `folder`, to be moved by the caller) of a multipart/form-data body."""
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise FormError("send the request as multipart/form-data (as the OpenAI SDK does)")
    reader = _Reader(folder, limit)
    parser = MultipartParser(params[b"boundary"], {  # type: ignore[arg-type]
        name: getattr(reader, name) for name in ("on_part_begin", "on_header_field", "on_header_value",
                                                  "on_header_end", "on_headers_finished", "on_part_data",
                                                  "on_part_end")})  # fmt: skip
    try:
        async for piece in body:
            parser.write(piece)
        parser.finalize()
    except FormError as exc:
        reader.discard()
        if exc.status == 413:  # read the rest (and drop it): a client still sending would not see an early answer
            async for _ in body:
                pass
        raise
    except BaseException as exc:
        reader.discard()
        if isinstance(exc, Exception):
            raise FormError(f"the form could not be read: {str(exc).splitlines()[0][:200]}") from None
        raise
    return reader.fields, reader.upload


def keep(upload: Upload, folder: Path) -> Path:
    """Move the upload to `folder`/SHA256/NAME (the name it was sent with, made safe) and return its place. The same
    content is kept once: sent again under another name, the first copy is used."""
    from traxd.outputs import sanitize_name

    home = folder / upload.sha256
    home.mkdir(parents=True, exist_ok=True)
    kept = sorted(p for p in home.iterdir() if not p.name.startswith("."))
    os.utime(home)  # in use again: the sweep of old uploads leaves it alone for another keep period
    if kept:
        upload.path.unlink(missing_ok=True)
        return kept[0]
    target = home / (sanitize_name(Path(upload.filename).name) or "upload.bin")
    os.replace(upload.path, target)
    return target
