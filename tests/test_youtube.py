"""YOUTUBE (metadata) and DOWNLOAD via yt-dlp against a loopback server (generic and html5 extractors)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from yt_dlp.utils import DownloadError, ExtractorError, UnsupportedError

from tests.fakes.media_server import MediaServer
from tests.test_download import make_ctx, make_settings
from traxd import outputs
from traxd.adapters import download as dl
from traxd.adapters import ytdlp
from traxd.errors import PermanentError, RetryableError
from traxd.handlers.download import handle_download
from traxd.handlers.youtube import handle_youtube
from traxd.types import TaskType


def youtube(settings: Any, url: str) -> dict[str, Any]:
    ctx = make_ctx(settings, {"url": url})
    ctx = type(ctx)(**{**ctx.__dict__, "task": ctx.task.__class__(**{**ctx.task.__dict__, "type": TaskType.YOUTUBE})})
    return handle_youtube(ctx, {"url": url})


def test_metadata_of_an_html5_page_is_saved_beside_the_outputs(
    tmp_path: Path, media_server: MediaServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path)
    result = youtube(settings, media_server.url("/page/tone.mp3.html"))
    meta_path = settings.home / "out" / "talk.meta.json"
    assert result["meta_path"] == str(meta_path) and result["via"] == "yt-dlp"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    assert meta["extractor"] == "html5" and meta["title"].startswith("Episode tone.mp3: Q&A / über")
    assert meta["description"] == "A test page" and result["title"] == meta["title"]
    assert [h.method for h in media_server.requests("/media/")] == []  # metadata only: no media fetched
    assert not list(meta_path.parent.glob(".*tmp"))  # written atomically, no temp left
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""  # quiet logger, no progress bar


def test_site_audio_downloads_through_ytdlp(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    settings = make_settings(tmp_path)
    meta = youtube(settings, media_server.url("/page/tone.mp3.html"))
    ctx = make_ctx(settings, meta, task_id=2)
    result = handle_download(ctx, meta)
    path = Path(result["path"])
    assert result["via"] == "yt-dlp" and path.name == "audio.mp3"
    assert path.read_bytes() == media_files["tone.mp3"]
    assert path.is_relative_to(settings.tmp_dir / "job-7")
    assert result["sha256"] and result["bytes"] == len(media_files["tone.mp3"])


def test_direct_url_with_the_generic_extractor_and_progress_hooks(
    tmp_path: Path, media_server: MediaServer, media_files: dict[str, bytes]
) -> None:
    url = media_server.url("/media/tone.wav")
    limits = ytdlp.YtdlpLimits(timeout=10, max_bytes=10**7, ffmpeg_dir=ytdlp.ffmpeg_dir(tmp_path))
    info = ytdlp.extract_metadata(url, limits)
    assert info["extractor"] == "generic" and info["ext"] == "wav"
    seen: list[str] = []
    path = ytdlp.download_audio(url, tmp_path / "dl", limits, on_progress=lambda d: seen.append(d["status"]))
    assert path.read_bytes() == media_files["tone.wav"] and seen[-1] == "finished"
    assert (tmp_path / "ffmpeg-bin" / "ffmpeg").resolve().is_file()


@pytest.mark.parametrize("route", ["/media/long.wav", "/chunked/long.wav"])  # announced size, and none
def test_size_cap_through_ytdlp(tmp_path: Path, media_server: MediaServer, route: str) -> None:
    limits = ytdlp.YtdlpLimits(timeout=10, max_bytes=20_000)
    with pytest.raises(PermanentError, match="cap of 20000 bytes"):
        ytdlp.download_audio(media_server.url(route), tmp_path / "dl", limits)
    assert not list((tmp_path / "dl").glob("audio.*"))


def test_http_errors_are_classified_by_the_wrapped_type(tmp_path: Path, media_server: MediaServer) -> None:
    settings = make_settings(tmp_path)
    with pytest.raises(PermanentError, match="404") as gone:
        youtube(settings, media_server.url("/no/such/page"))
    with pytest.raises(RetryableError, match="503") as info:
        youtube(settings, media_server.url("/status/503"))
    assert (info.value.retry_after, info.value.http_status, gone.value.http_status) == (7.0, 503, 404)
    assert not (settings.home / "out").exists()  # no output for a failed task


@pytest.mark.parametrize(
    ("url", "error", "reason"),
    [
        ("file:///etc/passwd", PermanentError, "only http and https"),
        ("ftp://example.com/x", PermanentError, "only http and https"),
        ("http://nonexistent.invalid/watch?v=1", PermanentError, "unknown host"),
    ],
)
def test_bad_urls(tmp_path: Path, url: str, error: type[Exception], reason: str) -> None:
    with pytest.raises(error, match=reason):
        youtube(make_settings(tmp_path), url)


def test_private_address_refused_without_the_setting(tmp_path: Path, media_server: MediaServer) -> None:
    with pytest.raises(PermanentError, match="refused"):
        youtube(make_settings(tmp_path, allow_private_urls=False), media_server.url("/page/tone.mp3.html"))
    assert media_server.requests() == []


def test_translate_error_follows_the_wrapped_exception() -> None:
    try:
        raise UnsupportedError("http://x.example/")
    except UnsupportedError as exc:
        wrapped = DownloadError("ERROR: Unsupported URL", exc_info=(type(exc), exc, exc.__traceback__))
    assert isinstance(ytdlp.translate_error(wrapped, "u"), PermanentError)
    assert isinstance(ytdlp.translate_error(DownloadError("ERROR: odd"), "u"), RetryableError)
    gone = ExtractorError("Video unavailable", expected=True)
    assert isinstance(
        ytdlp.translate_error(DownloadError("x", exc_info=(ExtractorError, gone, None)), "u"), PermanentError
    )
    assert "Video unavailable" in str(ytdlp.translate_error(gone, "u"))


@pytest.mark.parametrize("name", ["../../etc/passwd", ".hidden", "a/b\\c", "Talk: Q&A?", "con"])
def test_metadata_sits_beside_the_transcript_under_its_name(
    tmp_path: Path, media_server: MediaServer, name: str
) -> None:
    # NAME.meta.json must stay inside the output folder and carry the stem the transcript of the same job gets.
    settings = make_settings(tmp_path)
    ctx = make_ctx(settings, {"url": media_server.url("/page/tone.mp3.html")})
    ctx = replace(ctx, job=replace(ctx.job, name=name), task=replace(ctx.task, type=TaskType.YOUTUBE))
    meta_path = Path(handle_youtube(ctx, {"url": media_server.url("/page/tone.mp3.html")})["meta_path"])
    folder = (settings.home / "out").resolve()
    base = outputs.choose_base(folder, name, owner=ctx.job.source)
    assert meta_path == folder / f"{base}.meta.json" and meta_path.is_file()


def test_metadata_takes_the_transcripts_stem_when_the_name_is_another_inputs(
    tmp_path: Path, media_server: MediaServer
) -> None:
    # talk.* belong to another input: the job's metadata and its transcript are both talk-2.*, and the other
    # input's files (its own talk.meta.json too) are left as they were.
    settings = make_settings(tmp_path)
    folder = settings.home / "out"
    folder.mkdir(parents=True)
    outputs.write_transcript(folder, outputs.choose_base(folder, "talk", "/inbox/talk.mp3"), {"source": "/inbox/talk.mp3"})
    (folder / "talk.meta.json").write_text("{\"theirs\": true}\n")
    url = media_server.url("/page/tone.mp3.html")
    meta_path = Path(youtube(settings, url)["meta_path"])
    assert meta_path == folder.resolve() / "talk-2.meta.json" and json.loads(meta_path.read_text())["extractor"]
    assert (folder / "talk.meta.json").read_text() == "{\"theirs\": true}\n"
    assert outputs.choose_base(folder, "talk", owner=url) == "talk-2"  # what the job's TRANSCRIBE will choose


def test_media_url_chosen_from_a_page_is_checked_before_it_is_fetched(
    tmp_path: Path, media_server: MediaServer
) -> None:
    # The page itself is fetched (loopback, treated as public here); the <audio> it embeds points at a cloud
    # metadata address, which must be refused before yt-dlp connects to it.
    def resolve(host: str, port: int) -> list[str]:
        return ["169.254.169.254"] if host == "metadata.internal" else ["93.184.216.34"]

    def check(url: str) -> None:
        dl.check_url(url, allow_private=False, resolve=resolve)

    page = media_server.url("/embed?src=http://metadata.internal/latest/meta-data.mp3")
    with pytest.raises(PermanentError, match=r"refused metadata\.internal \(169\.254\.169\.254\)"):
        ytdlp.download_audio(page, tmp_path / "dl", ytdlp.YtdlpLimits(timeout=5), check=check)
    ok = media_server.url("/embed?src=/media/tone.wav")
    assert ytdlp.download_audio(ok, tmp_path / "ok", ytdlp.YtdlpLimits(timeout=5), check=check).is_file()


def test_ytdlp_connections_are_pinned_to_the_checked_address(tmp_path: Path, media_server: MediaServer) -> None:
    """yt-dlp's own requests: a name that resolves to loopback when yt-dlp connects is refused, nothing is fetched;
    with private addresses allowed, yt-dlp connects to the address the policy resolved (no second look-up)."""
    page = media_server.url("/page/tone.mp3.html")
    looked_up: list[str] = []

    def loopback(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["127.0.0.1"]

    rebound = page.replace("127.0.0.1", "localhost")
    with pytest.raises(PermanentError, match=r"refused localhost \(127\.0\.0\.1\)"):
        ytdlp.extract_metadata(rebound, ytdlp.YtdlpLimits(allow_private=False, resolve=loopback))
    assert media_server.requests() == []
    unknown = page.replace("127.0.0.1", "media.example.invalid")  # only the policy's resolver knows this name
    info = ytdlp.extract_metadata(unknown, ytdlp.YtdlpLimits(allow_private=True, resolve=loopback))
    assert info["title"] and "media.example.invalid" in looked_up
    audio = ytdlp.download_audio(unknown, tmp_path / "dl", ytdlp.YtdlpLimits(allow_private=True, resolve=loopback))
    assert audio.stat().st_size > 0
