"""FFmpeg adapter: probing, bad inputs, conversion, chunking at silences, timeouts and scratch clean-up."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest

from tests.fakes import media
from traxd.adapters import ffmpeg
from traxd.errors import PermanentError, RetryableError
from traxd.model_catalog import MAX_UPLOAD_BYTES
from traxd.types import StopFlag


def test_probe_reads_audio_and_video(tmp_path: Path) -> None:
    wav = media.tone(tmp_path / "a.wav", 2.0)
    clip = media.video(tmp_path / "v.mp4", 2.0, audio=True)
    assert ffmpeg.probe(wav, tmp_path) == ffmpeg.Probe(2.0, True, False)
    info = ffmpeg.probe(clip, tmp_path)
    assert info.audio and info.video and info.duration == pytest.approx(2.0, abs=0.1)


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("these are not the droids you are looking for\n" * 50)
    whole = media.tone(tmp_path / "whole.wav", 3.0).read_bytes()
    truncated = tmp_path / "cut.wav"
    truncated.write_bytes(whole[: len(whole) // 3])
    header_only = tmp_path / "header.wav"
    header_only.write_bytes(whole[:30])
    return {
        "zero-byte": (empty, "empty file"),
        "text renamed .mp3": (text, "not a media file"),
        "truncated wav": (truncated, "truncated WAV"),
        "header-only wav": (header_only, "truncated WAV"),
        "video without audio": (media.video(tmp_path / "silent.mp4", 1.0, audio=False), "video without an audio track"),
        "missing": (tmp_path / "gone.wav", "file not found"),
        "directory": (tmp_path, "not a regular file"),
    }


def test_bad_inputs_fail_permanently_with_a_reason(tmp_path: Path) -> None:
    for label, (path, reason) in _bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{label.replace(' ', '_')}"
        with pytest.raises(PermanentError, match=reason):
            ffmpeg.preprocess(path, out, 600.0)


def test_name_starting_with_dash_is_not_an_option(tmp_path: Path) -> None:
    src = media.tone(tmp_path / "-y.wav", 1.0)
    prepared = ffmpeg.preprocess(src, tmp_path / "out", 600.0)
    assert len(prepared.chunks) == 1 and Path(prepared.chunks[0].path).stat().st_size > 0


@pytest.mark.parametrize(
    ("duration", "target", "silences", "window", "cuts"),
    [
        (10.0, 600.0, [], 60.0, []),
        (25.0, 10.0, [], 2.5, [10.0, 20.0]),
        (25.0, 10.0, [(8.5, 9.5)], 2.5, [9.0, 19.0]),
        (25.0, 10.0, [(3.0, 4.0)], 2.5, [10.0, 20.0]),  # too far before the boundary
        (25.0, 10.0, [(8.0, 8.2), (9.0, 9.8)], 2.5, [9.4, 19.4]),  # the longer pause wins
        (20.0, 10.0, [], 2.5, [10.0]),
        (600.02, 600.0, [], 60.0, []),  # no sliver of a chunk
    ],
)
def test_plan_cuts(duration: float, target: float, silences: list[tuple[float, float]], window: float, cuts: list[float]) -> None:
    assert ffmpeg.plan_cuts(duration, target, silences, window) == cuts


def test_long_input_is_chunked_contiguously_at_silences(tmp_path: Path) -> None:
    src = media.tones_with_gaps(tmp_path / "talk.mp3", [7.0, 8.0, 8.0], gap=1.0)  # 25 s, pauses at 7-8 and 16-17
    prepared = ffmpeg.preprocess(src, tmp_path / "chunks", 9.0)
    assert len(prepared.chunks) == 3
    assert prepared.duration == pytest.approx(25.0, abs=0.1)
    offsets = [c.offset for c in prepared.chunks]
    assert offsets[1] == pytest.approx(7.5, abs=0.1) and offsets[2] == pytest.approx(16.5, abs=0.1)
    for a, b in zip(prepared.chunks, prepared.chunks[1:]):
        assert b.offset == pytest.approx(a.offset + a.duration, abs=0.05)
    for chunk in prepared.chunks:
        assert chunk.duration <= 9.0 + 0.05
        assert 0 < Path(chunk.path).stat().st_size < MAX_UPLOAD_BYTES
        assert media.duration_of(Path(chunk.path).read_bytes()) == pytest.approx(chunk.duration, abs=0.1)
    assert not (tmp_path / "chunks" / "full.ogg").exists()


def test_output_is_mono_16k_opus(tmp_path: Path) -> None:
    prepared = ffmpeg.preprocess(media.tone(tmp_path / "s.wav", 2.0), tmp_path / "out", 600.0)
    log = tmp_path / "check.log"
    ffmpeg.run_ffmpeg(["-i", ffmpeg.media_arg(prepared.chunks[0].path)], log, 30.0)
    text = log.read_text()
    # Opus always decodes at 48 kHz; the encoder was fed 16 kHz mono (wideband speech).
    assert "Audio: opus" in text and ", mono," in text


def _mp3_labelled_pcm(tmp_path: Path, seconds: float) -> Path:
    """A RIFF/WAVE file whose header says 16-bit PCM but whose data chunk holds MP3 frames."""
    mp3 = tmp_path / "inner.mp3"
    media.ffmpeg("-f", "lavfi", "-i", f"sine=f=440:d={seconds}", "-b:a", "128k", str(mp3))
    frames = mp3.read_bytes()
    fmt = struct.pack("<HHIIHH", 1, 2, 44100, 44100 * 4, 4, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(frames)) + frames
    wav = tmp_path / "mislabelled.wav"
    wav.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return wav


def test_a_wav_is_sniffed_in_two_packets_and_mp3_inside_is_still_found(tmp_path: Path) -> None:
    wav = _mp3_labelled_pcm(tmp_path, 6.0)
    assert ffmpeg.input_args(wav)[2:4] == ["-max_probe_packets", "2"]  # not 32: that sniff was a third of the CPU
    assert "-max_probe_packets" not in ffmpeg.input_args(tmp_path / "inner.mp3")
    # Read as PCM, its 97 kB would be 0.55 s of noise; found as MP3 it is the 6-second tone.
    prepared = ffmpeg.preprocess(wav, tmp_path / "out", 600.0)
    assert prepared.duration == pytest.approx(6.0, abs=0.1)


def _packets(path: Path) -> list[str]:
    """The checksum of every audio packet, as stored (no decoding)."""
    out = path.with_suffix(".md5")
    media.ffmpeg("-i", str(path), "-map", "0:a", "-c", "copy", "-f", "framemd5", str(out))
    return [line.rsplit(",", 1)[-1].strip() for line in out.read_text().splitlines() if not line.startswith("#")]


def test_mono_opus_is_copied_not_encoded_again_and_still_cut_at_silences(tmp_path: Path) -> None:
    note = tmp_path / "note.ogg"  # a voice note: mono Opus at 16 kb/s in 60 ms frames (Trax itself writes 20 ms)
    media.ffmpeg("-i", str(media.tones_with_gaps(tmp_path / "n.wav", [5.0, 5.0], 1.0)), "-ac", "1", "-c:a", "libopus",
                 "-b:a", "16k", "-frame_duration", "60", str(note))  # fmt: skip
    prepared = ffmpeg.preprocess(note, tmp_path / "out", 600.0)
    (chunk,) = prepared.chunks
    assert _packets(Path(chunk.path)) == _packets(note)  # the same packets, byte for byte
    assert prepared.duration == pytest.approx(11.0, abs=0.1)
    assert any(5.0 <= (s + e) / 2 <= 6.0 for s, e in prepared.silences)  # decoded for silence detection
    cut = ffmpeg.preprocess(note, tmp_path / "cut", 7.0)  # and chunked by stream copy like any converted file
    assert [round(c.offset, 1) for c in cut.chunks][:1] == [0.0] and len(cut.chunks) == 2
    stereo = tmp_path / "stereo.ogg"
    media.ffmpeg("-i", str(media.tone(tmp_path / "s.wav", 2.0)), "-c:a", "libopus", "-b:a", "16k", str(stereo))
    assert not ffmpeg.is_mono_opus(stereo) and ffmpeg.is_mono_opus(note) and not ffmpeg.is_mono_opus(tmp_path / "s.wav")


def test_fat_mono_opus_is_encoded_to_the_upload_bitrate(tmp_path: Path) -> None:
    fat = tmp_path / "fat.ogg"
    media.ffmpeg("-i", str(media.noise(tmp_path / "n.wav", 3.0)), "-ac", "1", "-c:a", "libopus", "-b:a", "128k", str(fat))
    prepared = ffmpeg.preprocess(fat, tmp_path / "out", 600.0)
    (chunk,) = prepared.chunks
    assert _packets(Path(chunk.path)) != _packets(fat)
    assert Path(chunk.path).stat().st_size * 8 <= prepared.duration * ffmpeg.BITRATE_KBPS * 1500


def test_resplit_halves_a_chunk_and_keeps_offsets(tmp_path: Path) -> None:
    prepared = ffmpeg.preprocess(media.tone(tmp_path / "s.wav", 8.0), tmp_path / "out", 600.0)
    whole = ffmpeg.Chunk(prepared.chunks[0].path, 100.0, prepared.chunks[0].duration)
    pieces = ffmpeg.resplit(whole, tmp_path / "halves")
    assert len(pieces) == 2 and pieces[0].offset == 100.0
    assert pieces[1].offset == pytest.approx(104.0, abs=0.1)


def test_timeout_kills_ffmpeg(tmp_path: Path) -> None:
    endless = ["-f", "lavfi", "-i", "sine=f=440", "-f", "null", "-"]
    with pytest.raises(PermanentError, match="longer than"):
        ffmpeg.run_ffmpeg(endless, tmp_path / "log", timeout=0.5)


def test_cancel_stops_ffmpeg(tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    with pytest.raises(RetryableError, match="cancelled"):
        ffmpeg.run_ffmpeg(["-f", "lavfi", "-i", "sine=f=440", "-f", "null", "-"], tmp_path / "log", 60.0, stop)


def test_other_protocols_are_refused(tmp_path: Path) -> None:
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/x.wav\n")
    with pytest.raises(PermanentError):
        ffmpeg.preprocess(playlist, tmp_path / "out", 600.0)


def test_large_files_are_probed_first_for_a_duration_based_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ffmpeg, "PROBE_ABOVE_BYTES", 0)
    seen: list[float] = []
    real = ffmpeg.convert

    def spy(src: Path, dest: Path, timeout: float, cancelled: StopFlag | None = None,
            copy: bool = False) -> tuple[float, list[tuple[float, float]]]:  # fmt: skip
        seen.append(timeout)
        return real(src, dest, timeout, cancelled, copy)

    monkeypatch.setattr(ffmpeg, "convert", spy)
    prepared = ffmpeg.preprocess(media.tone(tmp_path / "a.wav", 4.0), tmp_path / "out", 600.0)
    assert prepared.duration == pytest.approx(4.0, abs=0.05) and seen == [ffmpeg.convert_timeout(4.0)]
    assert (tmp_path / "out" / "probe.log").exists()
    with pytest.raises(PermanentError, match="video without an audio track"):
        ffmpeg.preprocess(media.video(tmp_path / "v.mp4", 1.0, audio=False), tmp_path / "out2", 600.0)


def test_the_local_backend_gets_lossless_pcm_chunks_cut_at_silences(tmp_path: Path) -> None:
    """Nothing is uploaded for local transcription: no Opus encode in FFmpeg and no Opus decode in faster-whisper
    (the benchmark's overhead), and no lossy step before recognition."""
    from tests.fakes.context import Ctx
    from traxd.config import load_settings
    from traxd.handlers.preprocess import preprocess

    src = media.tones_with_gaps(tmp_path / "talk.mp3", [7.0, 8.0, 8.0], gap=1.0)
    local = load_settings({"home": tmp_path / "home", "backend": "local", "chunk_size": 9.0}, env={})
    chunks = preprocess(Ctx(local).make({"path": str(src)}), {"path": str(src)})["chunks"]
    assert len(chunks) == 3 and all(c["path"].endswith(".wav") for c in chunks)
    for chunk in chunks:
        data = Path(chunk["path"]).read_bytes()
        assert data[:4] == b"RIFF" and data[20:22] == (1).to_bytes(2, "little")  # WAVE_FORMAT_PCM
        assert int.from_bytes(data[24:28], "little") == 16000 and data[22:24] == (1).to_bytes(2, "little")  # mono
        assert media.duration_of(data, ".wav") == pytest.approx(chunk["duration"], abs=0.05)
    api = load_settings({"home": tmp_path / "home2", "backend": "openai", "openai_api_key": "sk-x"}, env={})
    assert preprocess(Ctx(api).make({"path": str(src)}), {"path": str(src)})["chunks"][0]["path"].endswith(".ogg")
