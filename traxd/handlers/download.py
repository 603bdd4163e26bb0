"""DOWNLOAD: fetch a direct media URL with httpx (resumable), or a site's audio with yt-dlp; result {"path": …}."""

from __future__ import annotations

import errno
import hashlib
import mimetypes
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from traxd import outputs
from traxd.adapters import download as http_download
from traxd.adapters import ytdlp
from traxd.errors import PermanentError
from traxd.handlers.common import output_dir, output_name, work_dir
from traxd.handlers.registry import TaskContext
from traxd.logging import get_logger
from traxd.urls import MEDIA_EXTENSIONS, url_problem

log = get_logger("download")


def handle_download(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Download the payload's URL into the job's scratch folder and return its path, size and sha256."""
    url = str(payload.get("url") or "").strip()
    if not url:
        raise PermanentError("DOWNLOAD task has no url in its payload")
    problem = url_problem(url)
    if problem:
        raise PermanentError(problem)
    done = _finished_before(ctx)
    if done:
        return done
    folder = work_dir(ctx) / "download"
    if payload.get("via") == "yt-dlp":
        result = _via_ytdlp(ctx, url, folder)
    else:
        result = _via_httpx(ctx, url, folder)
    if payload.get("title"):
        result["title"] = payload["title"]
    ctx.checkpoint(result)
    log.info("download_finished", task_id=ctx.task.id, bytes=result["bytes"], via=result["via"])
    return result


def _finished_before(ctx: TaskContext) -> dict[str, Any] | None:
    """A previous attempt that downloaded everything but crashed before completing: reuse its file."""
    prev = ctx.previous
    path = prev.get("path")
    if path and prev.get("sha256") and Path(path).is_file() and Path(path).stat().st_size == prev.get("bytes"):
        return prev
    return None


def _via_httpx(ctx: TaskContext, url: str, folder: Path) -> dict[str, Any]:
    s = ctx.settings
    limits = http_download.Limits(
        max_bytes=int(s.max_download_mb * 1024 * 1024),
        timeout=s.download_timeout_seconds,
        allow_private=s.allow_private_urls,
    )
    folder.mkdir(parents=True, exist_ok=True)
    got = http_download.download(url, folder / "source.part", limits, cancelled=ctx.cancelled)
    final = folder / f"source{_extension(got.url, got.content_type)}"
    os.replace(got.path, final)
    Path(str(got.path) + ".json").unlink(missing_ok=True)
    return _result(final, url, "httpx", final_url=got.url, resumed_from=got.resumed_from,
                   content_type=got.content_type)  # fmt: skip


def _via_ytdlp(ctx: TaskContext, url: str, folder: Path) -> dict[str, Any]:
    s = ctx.settings
    http_download.check_url(url, s.allow_private_urls)
    limits = ytdlp.YtdlpLimits(
        timeout=s.download_timeout_seconds,
        max_bytes=int(s.max_download_mb * 1024 * 1024),
        ffmpeg_dir=ytdlp.ffmpeg_dir(Path(s.tmp_dir)),
        allow_private=s.allow_private_urls,
    )
    allow = s.allow_private_urls
    path = ytdlp.download_audio(
        url, folder, limits, cancelled=ctx.cancelled, check=lambda media: http_download.check_url(media, allow)
    )
    return _result(path, url, "yt-dlp")


def _result(path: Path, url: str, via: str, **extra: Any) -> dict[str, Any]:
    return {"path": str(path), "url": url, "via": via, "bytes": path.stat().st_size,
            "sha256": _sha256(path), **extra}  # fmt: skip


def _extension(url: str, content_type: str | None) -> str:
    """The media extension from the URL path, else from the Content-Type, else .bin (preprocess probes anyway)."""
    suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix.lower()
    if suffix.lstrip(".") in MEDIA_EXTENSIONS:
        return suffix
    guessed = mimetypes.guess_extension((content_type or "").split(";")[0].strip()) or ""
    return guessed if guessed.lstrip(".") in MEDIA_EXTENSIONS else ".bin"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def deliver(ctx: TaskContext, result: dict[str, Any]) -> dict[str, Any]:
    """A download that ends its job (no stage reads it) goes from the scratch folder, which is swept when the job
    ends, to the job's output folder as NAME.ext (NAME-2.ext … beside another file); the result's `path` says where."""
    src = Path(str(result.get("path") or ""))
    if ctx.work_dir is None or not src.is_file() or not src.is_relative_to(ctx.work_dir):
        return result  # not a file of this job's scratch: nothing would sweep it
    folder = output_dir(ctx, ctx.task.payload)
    folder.mkdir(parents=True, exist_ok=True)
    stem = outputs.sanitize_name(output_name(ctx, ctx.task.payload))
    for n in range(1, 10_000):
        dst = outputs.inside(folder, f"{stem if n == 1 else f'{stem}-{n}'}{src.suffix}")
        if _delivered_before(dst, result) or _link_or_copy(src, dst):
            outputs.fsync_dir(folder)
            log.info("download_delivered", task_id=ctx.task.id, path=str(dst))
            return {**result, "path": str(dst), "output_dir": str(folder)}
    raise PermanentError(f"no free name for the download of {result.get('url')} in {folder}")


def _delivered_before(dst: Path, result: dict[str, Any]) -> bool:
    """An earlier attempt of this task put the same bytes there (it stopped before its completion was recorded)."""
    if dst.is_symlink() or not dst.is_file() or dst.stat().st_size != result.get("bytes"):
        return False
    return _sha256(dst) == result.get("sha256")


def _link_or_copy(src: Path, dst: Path) -> bool:
    """Give `src` the name `dst` unless that name is taken (False): a hard link, or a synced copy on another disk."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    staged = dst.with_name(f".{dst.name}.{os.urandom(4).hex()}.tmp")  # swept at start if a kill leaves it
    try:
        shutil.copyfile(src, staged)
        with staged.open("rb") as fh:
            os.fsync(fh.fileno())
        os.link(staged, dst)  # never over a file that appeared meanwhile
        return True
    except FileExistsError:
        return False
    finally:
        staged.unlink(missing_ok=True)
