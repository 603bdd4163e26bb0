"""URL files and URL classification (pure)."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from traxd.errors import UserError
from traxd.types import TaskType
from traxd.urls import (
    classify_url,
    is_url_file,
    parse_url_file,
    task_type_for,
    url_problem,
)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://www.youtube.com/watch?v=dQw4w9WgXcQ", "youtube"),
        ("https://youtu.be/dQw4w9WgXcQ", "youtube"),
        ("https://vimeo.com/123", "youtube"),
        ("http://example.com/podcast/ep1.mp3", "download"),
        ("https://example.com/a/b/Talk%20One.M4A?sig=1", "download"),
        ("https://example.com/video.webm#t=3", "download"),
        ("HTTPS://EXAMPLE.COM/x.wav", "download"),
        ("file:///etc/passwd", "rejected"),
        ("ftp://example.com/a.mp3", "rejected"),
        ("javascript:alert(1)", "rejected"),
        ("example.com/a.mp3", "rejected"),
        ("http:///nohost.mp3", "rejected"),
        ("http://example.com:99999/a.mp3", "rejected"),
        ("http://exa mple.com/a.mp3", "rejected"),
        ("", "rejected"),
    ],
)
def test_classify_url(url: str, kind: str) -> None:
    result = classify_url(url)
    assert result.kind == kind
    assert (result.reason is None) == (kind != "rejected")


def test_rejected_reasons_name_the_scheme() -> None:
    kind, reason = classify_url("file:///etc/passwd")
    assert kind == "rejected" and "file://" in reason and "only http and https" in reason
    assert "ftp://" in (url_problem("ftp://host/x") or "")


def test_task_type_for_each_kind() -> None:
    assert task_type_for("youtube") is TaskType.YOUTUBE
    assert task_type_for("download") is TaskType.DOWNLOAD
    assert task_type_for("rejected") is TaskType.DOWNLOAD  # its handler fails it with the reason


def test_txt_file_one_url_per_line(tmp_path: Path) -> None:
    f = tmp_path / "links.txt"
    f.write_text(
        "\ufeff# my talks\n\nhttps://youtu.be/abc\n  http://h.example/a.mp3  \nfile:///etc/passwd\n"
        "ftp://h.example/b.mp3\nsome prose line\nhttps://youtu.be/abc\n",
        encoding="utf-8",
    )
    assert parse_url_file(f) == [
        "https://youtu.be/abc",
        "http://h.example/a.mp3",
        "file:///etc/passwd",
        "ftp://h.example/b.mp3",
    ]
    kinds = [classify_url(u).kind for u in parse_url_file(f)]
    assert kinds == ["youtube", "download", "rejected", "rejected"]


def test_txt_without_urls_is_empty(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("buy milk\n# nothing here\n", encoding="utf-8")
    assert parse_url_file(f) == []


def test_internet_shortcut(tmp_path: Path) -> None:
    f = tmp_path / "talk.url"
    f.write_text("[InternetShortcut]\r\nURL=https://www.youtube.com/watch?v=x%20y\r\nIconIndex=0\r\n", encoding="utf-8")
    assert parse_url_file(f) == ["https://www.youtube.com/watch?v=x%20y"]


def test_internet_shortcut_without_url(tmp_path: Path) -> None:
    f = tmp_path / "bad.url"
    f.write_text("[InternetShortcut]\nIconIndex=0\n", encoding="utf-8")
    with pytest.raises(UserError, match="no URL="):
        parse_url_file(f)
    g = tmp_path / "garbage.url"
    g.write_text("URL=before any section\n", encoding="utf-8")
    with pytest.raises(UserError, match="not an Internet shortcut"):
        parse_url_file(g)


@pytest.mark.parametrize("fmt", [plistlib.FMT_XML, plistlib.FMT_BINARY])
def test_webloc_xml_and_binary(tmp_path: Path, fmt: plistlib.PlistFormat) -> None:
    f = tmp_path / "talk.webloc"
    f.write_bytes(plistlib.dumps({"URL": "https://example.com/ep.mp3"}, fmt=fmt))
    assert parse_url_file(f) == ["https://example.com/ep.mp3"]


def test_webloc_malformed(tmp_path: Path) -> None:
    f = tmp_path / "bad.webloc"
    f.write_bytes(b"not a plist")
    with pytest.raises(UserError, match="not a valid .webloc"):
        parse_url_file(f)
    g = tmp_path / "empty.webloc"
    g.write_bytes(plistlib.dumps({"Other": 1}))
    with pytest.raises(UserError, match="has no URL"):
        parse_url_file(g)


def test_non_utf8_and_other_suffixes(tmp_path: Path) -> None:
    f = tmp_path / "latin.txt"
    f.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(UserError, match="UTF-8"):
        parse_url_file(f)
    with pytest.raises(UserError, match="not a URL file"):
        parse_url_file(tmp_path / "a.mp3")
    assert is_url_file(Path("x.WEBLOC")) and is_url_file(Path("a.txt")) and not is_url_file(Path("a.mp3"))
