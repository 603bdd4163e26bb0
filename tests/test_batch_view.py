"""The live display and the summary render (a forced terminal into a buffer)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from traxd.batching.result import BatchResult
from traxd.cli.batch_view import LiveReporter, PlainReporter, failure_lines, live_info
from traxd.progress import BatchProgress

RESULT = BatchResult(total_tasks=3, completed_tasks=2, failed_tasks=1, processing_time=4.2, peak_memory_mb=88.0,
                     failures=[{"source": "/in/x.mp3", "type": "transcribe", "reason": "401 Unauthorized"}],
                     warnings=[{"warning": "low_confidence", "count": 2, "sources": ["a", "b"]}],
                     quality_metrics={"average_confidence": 0.81})  # fmt: skip


def consoles() -> tuple[Console, Console, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Console(file=out, force_terminal=True, width=160), Console(file=err, force_terminal=True, width=160), out, err


def test_live_display_shows_bar_counts_eta_workers_memory_cpu() -> None:
    out_c, err_c, out, err = consoles()
    view = LiveReporter(out_c, err_c)
    view.begin(3)
    p = BatchProgress(total_tasks=3, completed_tasks=1, failed_tasks=1, active_workers=4, memory_usage_mb=512.3,
                      cpu_usage_percent=75.2, eta_seconds=65, paused_reason="memory 900MB over limit 512MB")  # fmt: skip
    view.update(p)
    view.finish(RESULT, Path("/out/trax-batch-1.json"))
    shown = err.getvalue()
    assert "2/3" in shown and "ETA 1m05s" in shown and "workers 4" in shown and "512.3MB" in shown
    assert "paused: memory 900MB over limit 512MB" in shown
    assert "Average confidence" in out.getvalue() and "FAILED /in/x.mp3 (transcribe): 401 Unauthorized" in out.getvalue()


def test_live_info_and_failure_lines() -> None:
    assert live_info(BatchProgress(total_tasks=2)) == "ok 0 | failed 0 | ETA -- | workers 0 | 0.0MB | CPU 0.0%"
    assert failure_lines(RESULT) == ["FAILED /in/x.mp3 (transcribe): 401 Unauthorized"]


def test_json_summary_only_json_on_stdout() -> None:
    out_c, err_c, out, _err = consoles()
    PlainReporter(out_c, err_c, as_json=True).finish(RESULT, None)
    assert out.getvalue().lstrip().startswith("{") and '"failed": 1' in out.getvalue()
