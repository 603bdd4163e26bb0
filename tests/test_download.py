"""DOWNLOAD over httpx against a loopback media server: resume, size cap, redirects, refused targets."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.media_server import MediaServer
from traxd.adapters import download as dl
from traxd.config import Settings, load_settings
from traxd.errors import PermanentError, RetryableError
from traxd.handlers.download import handle_download
from traxd.handlers.registry import TaskContext
from traxd.types import Job, Task, TaskState, TaskType


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test home; loopback allowed unless the test says otherwise."""
    values: dict[str, Any] = {"home": tmp_path / "home", "allow_private_urls": True} | overrides
    return load_settings(values, env={})


def make_ctx(
    settings: Settings, payload: dict[str, Any], previous: dict[str, Any] | None = None, task_id: int = 1
) -> TaskContext:
    """A handler context with a job, a scratch folder and a recording checkpoint."""
    task = Task(task_id, TaskType.DOWNLOAD, payload, TaskState.RUNNING, 6, 1, 3, 0.0, "me", None, None, None, [],
                previous, None, 7, 0.0, 0.0, None, None)  # fmt: skip
    job = Job(7, payload.get("url", ""), "talk", str(settings.home / "out"), "test", {}, 0.0)
    saved: list[dict[str, Any]] = []
    return TaskContext(task=task, job=job, settings=settings, work_dir=settings.tmp_dir / "job-7",
                       checkpoint=lambda d, **_: saved.append(d) or True)  # fmt: skip


def run(settings: Settings, url: str, **payload: Any) -> dict[str, Any]:
    return handle_download(make_ctx(settings, {"url": url, **payload}), {"url": url, **payload})


def test_direct_download(tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]) -> None:
    settings = make_settings(tmp_path)
    result = run(settings, media_server.url("/media/tone.wav"))
    path = Path(result["path"])
    assert path.read_bytes() == media_files["tone.wav"]
    assert path.suffix == ".wav" and path.is_relative_to(settings.tmp_dir / "job-7")
    assert result["sha256"] == hashlib.sha256(media_files["tone.wav"]).hexdigest()
    assert result["bytes"] == len(media_files["tone.wav"]) and result["via"] == "httpx"
    assert not list(path.parent.glob("*.part*"))


def test_resume_after_interrupted_download(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    url = media_server.url("/drop/long.wav")
    with pytest.raises(RetryableError, match="network error"):
        run(settings, url)
    part = settings.tmp_dir / "job-7" / "download" / "source.part"
    half = len(media_files["long.wav"]) // 2
    assert part.stat().st_size == half  # the bytes that arrived are kept
    result = run(settings, url)  # the retry
    assert Path(result["path"]).read_bytes() == media_files["long.wav"]
    assert result["resumed_from"] == half
    ranges = [h.headers.get("range") for h in media_server.requests("/drop/")]
    assert ranges == [None, f"bytes={half}-"]


def test_resume_of_a_part_left_by_a_crash_uses_if_range(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    url = media_server.url("/media/long.wav")
    data = media_files["long.wav"]
    part = settings.tmp_dir / "job-7" / "download" / "source.part"
    part.parent.mkdir(parents=True)
    # What a killed process leaves: the first bytes and the validators of the response it was reading.
    part.write_bytes(data[:1000])
    first = media_server.requests()
    assert first == []
    etag = f'"{len(data)}-{hash(data) & 0xFFFFFF:x}"'
    part.with_name("source.part.json").write_text(json.dumps({"url": url, "validator": etag}))
    result = run(settings, url)
    assert Path(result["path"]).read_bytes() == data and result["resumed_from"] == 1000
    hit = media_server.requests("/media/")[0]
    assert hit.headers["range"] == "bytes=1000-" and hit.headers["if-range"] == etag


def test_changed_file_restarts_from_zero(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    url = media_server.url("/media/tone.wav")
    part = settings.tmp_dir / "job-7" / "download" / "source.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"X" * 500)  # bytes of an older version of the file
    part.with_name("source.part.json").write_text(json.dumps({"url": url, "validator": '"old-etag"'}))
    result = run(settings, url)
    assert Path(result["path"]).read_bytes() == media_files["tone.wav"] and result["resumed_from"] == 0


def test_part_already_complete_is_not_downloaded_again(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    url = media_server.url("/media/tone.wav")
    part = settings.tmp_dir / "job-7" / "download" / "source.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(media_files["tone.wav"])
    part.with_name("source.part.json").write_text(json.dumps({"url": url, "validator": None}))
    result = run(settings, url)
    assert Path(result["path"]).read_bytes() == media_files["tone.wav"]
    assert [h.headers.get("range") for h in media_server.requests("/media/")] == [
        f"bytes={len(media_files['tone.wav'])}-"
    ]


def test_finished_download_is_reused_after_a_crash_before_completion(tmp_path: Path, media_server: MediaServer) -> None:
    settings = make_settings(tmp_path)
    url = media_server.url("/media/tone.wav")
    first = run(settings, url)
    ctx = make_ctx(settings, {"url": url}, previous=first)
    assert handle_download(ctx, {"url": url}) == first
    assert len(media_server.requests("/media/")) == 1


@pytest.mark.parametrize("route", ["/media/long.wav", "/chunked/long.wav"])
def test_size_cap(tmp_path: Path, media_server: MediaServer, route: str) -> None:
    settings = make_settings(tmp_path, max_download_mb=0.05)  # about 52 KB; the file is about 640 KB
    with pytest.raises(PermanentError, match="cap"):
        run(settings, media_server.url(route))
    assert not list((settings.tmp_dir / "job-7" / "download").glob("source*"))


def test_redirects_followed_up_to_the_limit(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    result = run(settings, media_server.url("/redirect/3/tone.wav"))
    assert Path(result["path"]).read_bytes() == media_files["tone.wav"]
    assert result["final_url"] == media_server.url("/media/tone.wav")
    with pytest.raises(PermanentError, match="too many redirects"):
        run(settings, media_server.url("/redirect/6/tone.wav"))
    limits = dl.Limits(max_bytes=10**7, max_redirects=2, allow_private=True)
    with pytest.raises(PermanentError, match=r"more than 2"):
        dl.download(media_server.url("/redirect/3/tone.wav"), tmp_path / "x.part", limits)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("file:///etc/passwd", r"scheme \(file:"),
        ("ftp://127.0.0.1/a.mp3", r"scheme \(ftp://"),
        ("http://nonexistent.invalid/a.mp3", "unknown host"),
    ],
)
def test_every_redirect_target_is_checked(tmp_path: Path, media_server: MediaServer, target: str, reason: str) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(PermanentError, match=reason):
        run(settings, media_server.url(f"/to?url={target}"))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "unsupported URL scheme (file://)"),
        ("ftp://example.com/talk.mp3", "unsupported URL scheme (ftp://)"),
        ("http://nonexistent.invalid/talk.mp3", "unknown host 'nonexistent.invalid'"),
        ("", "no url"),
    ],
)
def test_bad_urls_fail_permanently_with_a_reason(tmp_path: Path, url: str, reason: str) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(PermanentError) as info:
        run(settings, url)
    assert reason in str(info.value)
    assert not (settings.home / "out").exists()


def test_private_address_refused_without_the_setting(tmp_path: Path, media_server: MediaServer) -> None:
    settings = make_settings(tmp_path, allow_private_urls=False)
    with pytest.raises(PermanentError, match=r"refused 127\.0\.0\.1.*allow_private_urls"):
        run(settings, media_server.url("/media/tone.wav"))
    assert media_server.requests() == []  # not a single byte was asked for


@pytest.mark.parametrize(
    ("address", "ok"),
    [("10.1.2.3", False), ("192.168.1.1", False), ("169.254.169.254", False), ("::1", False),
     ("::ffff:127.0.0.1", False), ("0.0.0.0", False), ("100.64.0.1", False), ("fe80::1%eth0", False),
     ("93.184.216.34", True), ("2606:4700::1111", True)],
)  # fmt: skip
def test_check_url_address_classes(address: str, ok: bool) -> None:
    def resolve(host: str, port: int) -> list[str]:
        return [address]

    if ok:
        dl.check_url("https://media.example.org/a.mp3", allow_private=False, resolve=resolve)
    else:
        with pytest.raises(PermanentError, match="refused"):
            dl.check_url("https://media.example.org/a.mp3", allow_private=False, resolve=resolve)
    dl.check_url("https://media.example.org/a.mp3", allow_private=True, resolve=resolve)


def test_dns_failure_of_a_real_looking_name_is_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(RetryableError, match="cannot resolve host 'media.example.org'"):
        dl.check_url("https://media.example.org/a.mp3", allow_private=False)


def test_http_errors_by_status(tmp_path: Path, media_server: MediaServer) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(PermanentError, match="HTTP 404") as gone:
        run(settings, media_server.url("/media/missing.wav"))
    with pytest.raises(RetryableError, match="HTTP 503") as info:
        run(settings, media_server.url("/status/503"))
    assert (info.value.retry_after, info.value.http_status, gone.value.http_status) == (7.0, 503, 404)
    with pytest.raises(RetryableError) as info:
        run(settings, media_server.url("/status/429"))
    assert info.value.retry_after == 7.0
    with pytest.raises(PermanentError, match="HTTP 403"):
        run(settings, media_server.url("/status/403"))


def test_connection_refused_is_retryable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    with pytest.raises(RetryableError, match="network error"):
        run(make_settings(tmp_path), f"http://127.0.0.1:{port}/a.mp3")


def test_cancel_keeps_the_part_for_resume(tmp_path: Path, media_server: MediaServer) -> None:
    cancelled = threading.Event()
    cancelled.set()
    limits = dl.Limits(max_bytes=10**7, allow_private=True)
    part = tmp_path / "x.part"
    with pytest.raises(RetryableError, match="cancelled"):
        dl.download(media_server.url("/media/long.wav"), part, limits, cancelled=cancelled)
    assert 0 < part.stat().st_size


def test_dns_rebinding_between_check_and_connect_is_refused(tmp_path: Path, media_server: MediaServer) -> None:
    """A name that looks public when checked and turns into 127.0.0.1 when connected never reaches loopback."""
    answers = iter(["93.184.216.34"])  # the first look-up: public; every later one: loopback

    def rebinding(host: str, port: int) -> list[str]:
        return [next(answers, "127.0.0.1")]

    url = media_server.url("/media/tone.wav").replace("127.0.0.1", "localhost")  # the system resolves it to loopback
    with pytest.raises(PermanentError, match=r"refused localhost \(127\.0\.0\.1\)"):
        dl.download(url, tmp_path / "a.part", dl.Limits(max_bytes=10**7), resolve=rebinding)
    assert media_server.requests() == []  # the connection went nowhere near the loopback server


def test_the_connection_goes_to_the_checked_address(tmp_path: Path, media_server: MediaServer) -> None:
    """With private addresses allowed, the connect still uses the resolver's answer, not a second system look-up."""
    looked_up: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    url = media_server.url("/media/tone.wav").replace("127.0.0.1", "media.example.invalid")
    done = dl.download(url, tmp_path / "a.part", dl.Limits(max_bytes=10**7, allow_private=True), resolve=resolver)
    assert done.size > 0 and looked_up == ["media.example.invalid", "media.example.invalid"]  # check, then connect
