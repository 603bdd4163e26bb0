"""A task's stop flag (handlers.registry.Cancellation): what handlers used of threading.Event, made cheaply."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.test_pipelines import task
from traxd.adapters import ffmpeg
from traxd.errors import RetryableError
from traxd.handlers.registry import Cancellation, TaskContext
from traxd.types import TaskType


def test_a_new_flag_is_clear_and_a_wait_times_out_false() -> None:
    flag = Cancellation()
    assert flag.is_set() is False
    assert flag.wait(0.01) is False
    assert flag.is_set() is False


def test_set_is_seen_at_once_and_by_later_waits() -> None:
    flag = Cancellation()
    flag.set()
    flag.set()  # a second set (shutdown after a lost lease) is harmless
    assert flag.is_set() is True
    assert flag.wait(0) is True
    assert flag.wait() is True


def test_set_wakes_a_handler_blocked_in_wait() -> None:
    flag = Cancellation()
    waiting, woke = threading.Event(), []

    def handler() -> None:
        waiting.set()
        woke.append(flag.wait(30))

    thread = threading.Thread(target=handler)
    thread.start()
    assert waiting.wait(10)
    flag.set()
    thread.join(10)
    assert not thread.is_alive()
    assert woke == [True]


def test_every_context_gets_its_own_flag() -> None:
    a, b = TaskContext(task=task(TaskType.TRANSCRIBE)), TaskContext(task=task(TaskType.TRANSCRIBE))
    assert a.cancelled is not b.cancelled
    a.cancelled.set()
    assert not b.cancelled.is_set()


def test_a_flag_set_while_ffmpeg_runs_stops_it(tmp_path: Path) -> None:
    """What the pool does when a lease is lost mid-run: the adapters take the context's flag as their StopFlag."""
    flag = Cancellation()
    threading.Timer(0.3, flag.set).start()
    endless = ["-f", "lavfi", "-i", "sine=f=440", "-f", "null", "-"]
    with pytest.raises(RetryableError, match="cancelled"):
        ffmpeg.run_ffmpeg(endless, tmp_path / "log", 60.0, flag)
