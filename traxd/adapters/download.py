"""Direct media downloads with httpx: streaming to a .part file, Range resume, size cap, checked redirects.

Every hop (the first URL and each redirect target) is checked before it is fetched: http/https only, and the
host must resolve to public addresses unless private ones are allowed. Errors leave as RetryableError (network,
timeouts, 408/429/5xx, a connection dropped mid-body: the .part file is kept for a Range resume) or
PermanentError (4xx, bad scheme, too large, too many redirects, a name that can never resolve).

The address check is made where the socket is opened (PinnedBackend, under httpx's transport): the connection goes
to exactly the addresses that passed, so a DNS answer that changes between a check and the connect (DNS rebinding)
cannot reach a private address, on the first URL or on any redirect hop.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from traxd.adapters.http_errors import is_retryable_status, retry_after
from traxd.errors import PermanentError, RetryableError, TaskError
from traxd.types import StopFlag
from traxd.urls import url_problem

USER_AGENT = "trax/0.1 (+https://github.com/trax)"
Resolver = Callable[[str, int], list[str]]
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Limits:
    """What a download may do: bytes, seconds of silence on the socket, redirects, private hosts."""

    max_bytes: int
    timeout: float = 60.0
    max_redirects: int = 5
    allow_private: bool = False


@dataclass(frozen=True)
class Downloaded:
    """A finished download."""

    path: Path
    url: str
    size: int
    content_type: str | None
    resumed_from: int


def resolve_host(host: str, port: int) -> list[str]:
    """The addresses a host name resolves to; unknown names become task errors."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise host_lookup_error(host, exc) from None
    return sorted({str(info[4][0]) for info in infos})


def host_lookup_error(host: str, exc: BaseException) -> TaskError:
    """A failed lookup: permanent for names that can never exist, else retryable (the network may be down)."""
    name = host.rstrip(".").lower()
    if name == "invalid" or name.endswith(".invalid"):
        # RFC 6761 reserves .invalid: it never resolves, so retrying cannot help.
        return PermanentError(f"unknown host {host!r}: the name does not exist")
    # An offline laptop and a misspelt name fail the same way, so retry; after max_retries the task fails
    # with this reason.
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return RetryableError(f"cannot resolve host {host!r} ({detail})")


PRIVATE_HINT = "set allow_private_urls to allow them"


def check_url(url: str, allow_private: bool, resolve: Resolver = resolve_host, hint: str = PRIVATE_HINT) -> None:
    """Refuse what must not be fetched: other schemes, no host, private/loopback/link-local/reserved targets."""
    problem = url_problem(url)
    if problem:
        raise PermanentError(problem)
    parts = urlsplit(url.strip())
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    check_addresses(host, resolve(host, port), allow_private, hint)


def check_addresses(host: str, addresses: list[str], allow_private: bool, hint: str = PRIVATE_HINT) -> None:
    """Refuse a host without addresses, or with any address that is not public (unless private ones are allowed)."""
    if not addresses:
        raise host_lookup_error(host, OSError("no address"))
    if allow_private:
        return
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        mapped = getattr(ip, "ipv4_mapped", None)
        if not (mapped or ip).is_global:
            raise PermanentError(
                f"refused {host} ({ip}): private, loopback, link-local and reserved addresses are not "
                f"fetched ({hint})"
            )


def download(
    url: str,
    part: Path,
    limits: Limits,
    *,
    cancelled: StopFlag | None = None,
    on_progress: Progress | None = None,
    resolve: Resolver = resolve_host,
) -> Downloaded:
    """Fetch `url` into `part` (resuming a partial one), then return; the caller renames it. A body cut short leaves
    the .part file for a Range resume."""
    with transport_failures(f"the download of {url}"), _client(limits, resolve) as client:
        return _fetch(client, url, part, limits, cancelled, on_progress, resolve)


@contextmanager
def transport_failures(what: str) -> Iterator[None]:
    """httpx's failures as the queue's: a time-out, a refused or reset connection retryable; an unusable URL not."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{what} timed out ({type(exc).__name__})") from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentError(f"{what}: the URL cannot be used ({exc})") from None
    except httpx.TransportError as exc:
        raise RetryableError(f"network error ({type(exc).__name__}) on {what}") from None


def checked_addresses(host: str, port: int, allow_private: bool, resolve: Resolver = resolve_host,
                      hint: str = PRIVATE_HINT) -> list[str]:  # fmt: skip
    """Resolve `host` once and return its addresses if they may be connected to (else a TaskError)."""
    addresses = resolve(host, port)
    check_addresses(host, addresses, allow_private, hint)
    return addresses


class PinnedBackend(httpcore.SyncBackend):
    """Opens every connection to an address it has just resolved and checked: one DNS answer for both."""

    def __init__(self, allow_private: bool, resolve: Resolver, hint: str = PRIVATE_HINT) -> None:
        self.allow_private = allow_private
        self.resolve = resolve
        self.hint = hint

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:  # fmt: skip
        """Resolve, check, then connect to the checked address (TLS still verifies `host`: httpcore sends it)."""
        addresses = checked_addresses(host, port, self.allow_private, self.resolve, self.hint)
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None
        raise error


class PinnedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool on a PinnedBackend (httpx has no public hook for the backend)."""

    def __init__(self, backend: PinnedBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(ssl_context=httpx.create_ssl_context(trust_env=False),
                                             network_backend=backend)  # fmt: skip


def _client(limits: Limits, resolve: Resolver) -> httpx.Client:
    timeout = httpx.Timeout(limits.timeout, connect=min(limits.timeout, 15.0))
    # identity encoding: byte ranges must count the bytes we store, not decompressed ones.
    headers = {"user-agent": USER_AGENT, "accept-encoding": "identity"}
    transport = PinnedTransport(PinnedBackend(limits.allow_private, resolve))
    return httpx.Client(timeout=timeout, follow_redirects=False, headers=headers, trust_env=False, transport=transport)


def _fetch(
    client: httpx.Client,
    url: str,
    part: Path,
    limits: Limits,
    cancelled: StopFlag | None,
    on_progress: Progress | None,
    resolve: Resolver,
) -> Downloaded:
    offset = _resume_offset(part, url)
    response, final_url = _open(client, url, part, offset, limits, resolve)
    try:
        if response.status_code == 416 and offset:
            if _complete_by_416(response, offset):
                return Downloaded(part, final_url, offset, None, offset)
            _discard(part)
            response.close()
            return _fetch(client, url, part, limits, cancelled, on_progress, resolve)
        _check_status(response, final_url)
        start = _start_of(response, offset, part)
        _save_validators(part, url, response)
        size = _write_body(response, part, start, limits, cancelled, on_progress)
    finally:
        response.close()
    return Downloaded(part, final_url, size, response.headers.get("content-type"), start)


def _open(
    client: httpx.Client, url: str, part: Path, offset: int, limits: Limits, resolve: Resolver
) -> tuple[httpx.Response, str]:
    """Send the GET, following at most max_redirects redirects, each target checked before it is fetched."""
    current = url
    for _hop in range(limits.max_redirects + 1):
        check_url(current, limits.allow_private, resolve)
        response = client.send(client.build_request("GET", current, headers=_range_headers(part, offset)), stream=True)
        if not response.is_redirect:
            return response, current
        location = response.headers.get("location")
        response.close()
        if not location:
            raise PermanentError(f"HTTP {response.status_code} redirect without a Location from {current}")
        current = str(response.url.join(location))
    raise PermanentError(f"too many redirects (more than {limits.max_redirects}) from {url}")


def _range_headers(part: Path, offset: int) -> dict[str, str]:
    """Range from the bytes we have; If-Range so a changed file comes back whole (200) instead of spliced."""
    if not offset:
        return {}
    headers = {"range": f"bytes={offset}-"}
    validator = _load_validators(part).get("validator")
    if validator:
        headers["if-range"] = validator
    return headers


def _check_status(response: httpx.Response, url: str) -> None:
    status = response.status_code
    if status in (200, 206):
        return
    message = f"HTTP {status} {response.reason_phrase or ''} for {url}".replace("  ", " ")
    if is_retryable_status(status):
        raise RetryableError(message, retry_after=retry_after(response.headers), http_status=status)
    raise PermanentError(message, http_status=status)


def _start_of(response: httpx.Response, offset: int, part: Path) -> int:
    """Where the body starts: our offset for a matching 206, else 0 (a 200 means the server sent it all)."""
    if response.status_code != 206:
        return 0
    first = _content_range(response.headers.get("content-range"))[0]
    if first != offset:
        _discard(part)
        raise RetryableError(f"server resumed at byte {first}, not {offset}: starting over")
    return offset


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from `bytes a-b/total` or `bytes */total`; None where absent or unparsable."""
    if not value or not value.lower().startswith("bytes"):
        return None, None
    spec, _, total = value[5:].strip().partition("/")
    first = spec.partition("-")[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


def _complete_by_416(response: httpx.Response, offset: int) -> bool:
    """A 416 for `bytes=offset-` with total == offset means the .part already holds the whole file."""
    return _content_range(response.headers.get("content-range"))[1] == offset


def _expected_total(response: httpx.Response, start: int) -> int | None:
    total = _content_range(response.headers.get("content-range"))[1]
    if total is not None:
        return total
    length = response.headers.get("content-length")
    return start + int(length) if length and length.isdigit() else None


def _write_body(
    response: httpx.Response,
    part: Path,
    start: int,
    limits: Limits,
    cancelled: StopFlag | None,
    on_progress: Progress | None,
) -> int:
    """Stream the body to the .part file, enforcing the size cap on the announced and the actual length."""
    total = _expected_total(response, start)
    if total is not None and total > limits.max_bytes:
        _discard(part)
        raise PermanentError(f"file is {total} bytes, over the download cap of {limits.max_bytes} bytes")
    written = start
    with part.open("r+b" if start else "wb") as fh:
        fh.seek(start)
        fh.truncate()
        for chunk in response.iter_raw():  # no re-chunking: bytes that arrived before a drop are kept
            written += len(chunk)
            if written > limits.max_bytes:
                fh.close()
                _discard(part)
                raise PermanentError(f"download passed the cap of {limits.max_bytes} bytes")
            fh.write(chunk)
            if on_progress:
                on_progress(written, total)
            if cancelled is not None and cancelled.is_set():
                raise RetryableError("download interrupted: the task was cancelled (the partial file is kept)")
        fh.flush()
        os.fsync(fh.fileno())
    return written


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _resume_offset(part: Path, url: str) -> int:
    """Bytes already on disk for this URL (0 when none, or when they belong to another URL)."""
    if not part.exists():
        return 0
    if _load_validators(part).get("url") != url:
        _discard(part)
        return 0
    return part.stat().st_size


def _load_validators(part: Path) -> dict[str, str]:
    try:
        data = json.loads(_sidecar(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_validators(part: Path, url: str, response: httpx.Response) -> None:
    """Remember the URL and a strong validator (ETag, else Last-Modified) for If-Range on resume."""
    etag = response.headers.get("etag")
    validator = etag if etag and not etag.startswith("W/") else response.headers.get("last-modified")
    part.parent.mkdir(parents=True, exist_ok=True)
    _sidecar(part).write_text(json.dumps({"url": url, "validator": validator}), encoding="utf-8")


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _sidecar(part).unlink(missing_ok=True)
