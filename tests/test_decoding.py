"""The local engine's pure choices (device, threads, batch size, batched or not), the vocabulary and the file's
language: table-driven, no model needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from traxd import decoding, vocabulary
from traxd.config import load_settings
from traxd.errors import ConfigError, UsageError
from traxd.timeline import file_language


@pytest.mark.parametrize(
    ("asked", "cuda", "expected"),
    [("auto", 0, ("cpu", "int8")), ("auto", 1, ("cuda", "float16")), ("cpu", 2, ("cpu", "int8")),
     ("cuda", 1, ("cuda", "float16")), (" CUDA ", 2, ("cuda", "float16")), ("", 0, ("cpu", "int8"))],
)  # fmt: skip
def test_the_device_follows_what_ctranslate2_sees(asked: str, cuda: int, expected: tuple[str, str]) -> None:
    got = decoding.choose_device(asked, cuda)
    assert (got.name, got.compute_type) == expected


def test_cuda_without_a_device_and_unknown_devices_are_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sees no CUDA device"):
        decoding.choose_device("cuda", 0)
    with pytest.raises(ConfigError, match="auto, cpu, cuda"):
        decoding.choose_device("gpu", 1)
    with pytest.raises(ConfigError, match="TRAX_LOCAL_DEVICE"):
        load_settings({"home": tmp_path}, env={"TRAX_LOCAL_DEVICE": "tpu"})
    assert load_settings({"home": tmp_path}, env={"TRAX_LOCAL_DEVICE": "cpu"}).local_device == "cpu"


def test_threads_are_every_usable_core_never_zero() -> None:
    assert decoding.cpu_threads(2) == 2
    assert decoding.cpu_threads(12) == 12
    assert decoding.cpu_threads(0) == 1


def test_the_batch_shrinks_to_fit_the_memory_limit() -> None:
    per_item = decoding.ITEM_MB_PER_MODEL_MB * 100 + decoding.ITEM_MB_FIXED
    assert decoding.batch_size(2048, 300, 100) == decoding.MAX_BATCH  # plenty of room
    assert decoding.batch_size(300 + 3.5 * per_item, 300, 100) == 3  # room for three windows, not four
    assert decoding.batch_size(300 + per_item, 300, 100) == 1  # exactly one window's room
    assert decoding.batch_size(250, 300, 100) == 1  # already over the limit: one window at a time
    audio = decoding.AUDIO_MB_PER_SECOND * 600
    assert decoding.batch_size(300 + audio + 2.5 * per_item, 300, 100, seconds=600) == 2  # a 600 s chunk's audio counts
    big = decoding.batch_size(2048, 300, 1500)  # a large model gets fewer windows than a small one
    assert 1 <= big < decoding.batch_size(2048, 300, 100)


def test_short_chunks_decode_sequentially_long_ones_in_batches() -> None:
    assert not decoding.batched(decoding.BATCH_MIN_SECONDS, 8)
    assert decoding.batched(decoding.BATCH_MIN_SECONDS + 0.1, 8)
    assert not decoding.batched(600.0, 1)  # a batch of one is the sequential decoder without its fallback


def test_vocabulary_from_text_lists_and_files(tmp_path: Path) -> None:
    assert vocabulary.parse("Trax, DeepSeek ,Nguyen,, trax") == ("Trax", "DeepSeek", "Nguyen")
    assert vocabulary.parse(["Siobhan", " Kowalczyk "]) == ("Siobhan", "Kowalczyk")
    terms = tmp_path / "names.txt"
    terms.write_text("Siobhan Nguyen\nJaroslav Kowalczyk\n\nTrax\n")
    assert vocabulary.parse(str(terms)) == ("Siobhan Nguyen", "Jaroslav Kowalczyk", "Trax")
    assert vocabulary.parse(f"@{terms}") == ("Siobhan Nguyen", "Jaroslav Kowalczyk", "Trax")
    with pytest.raises(UsageError, match="cannot read"):
        vocabulary.parse(f"@{tmp_path / 'missing.txt'}")
    settings = load_settings({"home": tmp_path}, env={"TRAX_VOCABULARY": "Trax, DeepSeek"})
    assert settings.vocabulary == ("Trax", "DeepSeek")


def test_a_vocabulary_too_long_for_the_window_is_cut_with_a_warning() -> None:
    terms = tuple(f"Name{i}" for i in range(300))
    words, warning = vocabulary.fit(terms, 50, lambda text: len(text.split(",")))
    assert words == vocabulary.joined(terms[:50])
    assert warning is not None and "first 50 of 300 terms" in warning
    assert vocabulary.fit(terms[:10], 50, lambda text: len(text.split(","))) == (vocabulary.joined(terms[:10]), None)


def test_the_api_prompt_puts_the_vocabulary_first_and_keeps_it_in_the_window() -> None:
    prompt, warning = vocabulary.api_prompt(("Trax", "Nguyen"), "and so the meeting ended")
    assert prompt == "Trax, Nguyen. and so the meeting ended" and warning is None
    assert vocabulary.api_prompt((), "the tail") == ("the tail", None)
    long_tail = "word " * 400
    prompt, _ = vocabulary.api_prompt(("Trax",), long_tail)
    assert prompt is not None and prompt.startswith("Trax. ")
    assert vocabulary.estimated_tokens(prompt) <= vocabulary.PROMPT_TOKENS
    prompt, warning = vocabulary.api_prompt(tuple(f"Term{i}" for i in range(200)), "tail")
    assert warning is not None and vocabulary.estimated_tokens(prompt or "") <= vocabulary.PROMPT_TOKENS


def test_the_file_language_is_the_duration_weighted_majority_of_its_chunks() -> None:
    plan = [[0.0, 600.0], [600.0, 30.0], [630.0, 600.0], [1230.0, 20.0]]
    done = {"0": {"language": "de", "language_probability": 0.9}, "1": {"language": "en", "language_probability": 0.99},
            "2": {"language": "de", "language_probability": 0.7}, "3": {"language": "en"}}  # fmt: skip
    assert file_language(plan, done) == ("de", 0.8)
    assert file_language([[0.0, 10.0]], {"0": {"language": None}}) == (None, None)
    tie = {"0": {"language": "fr"}, "1": {"language": "es"}}
    assert file_language([[0.0, 5.0], [5.0, 5.0]], tie) == ("fr", None)  # a tie: the earlier language
