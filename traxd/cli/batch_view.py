"""How `trax batch` looks: a rich live display on a TTY, plain progress lines otherwise, a summary table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from traxd.batching.result import BatchResult, speaker_line
from traxd.progress import BatchProgress, format_eta, progress_line


class PlainReporter:
    """Messages and the spec's progress line on stderr; the summary table (or JSON) on stdout."""

    def __init__(self, out: Console, err: Console, as_json: bool = False) -> None:
        self.out, self.err, self.as_json = out, err, as_json

    def message(self, text: str) -> None:
        """One line for the user."""
        self.err.print(text, markup=False, highlight=False, soft_wrap=True)

    def begin(self, total: int) -> None:
        """Nothing to set up for plain lines."""

    def update(self, progress: BatchProgress) -> None:
        """`Progress: 45/100 (45.0% success) | Active: 8 | ... | ETA: 3m05s`."""
        self.err.print(progress_line(progress), markup=False, highlight=False, soft_wrap=True)

    def finish(self, result: BatchResult, report: Path | None) -> None:
        """The summary: JSON on stdout with --json, else rich tables."""
        if self.as_json:
            # Plain JSON even on a terminal: it is for machines.
            data = {**result.as_dict(), "report": str(report) if report else None}
            self.out.file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            return
        for table in summary_tables(result):
            self.out.print(table)
        if result.speakers:
            self.out.print("Speakers:", style="bold")
        for entry in result.speakers:
            self.out.print(f"  {speaker_line(entry)}", markup=False, highlight=False, soft_wrap=True)
        if result.failures:
            self.out.print(f"Failures ({len(result.failures)}):", style="bold red")
        for line in failure_lines(result):
            self.out.print(line, markup=False, highlight=False, soft_wrap=True)
        if report is not None:
            self.out.print(f"Report: {report}", markup=False, highlight=False, soft_wrap=True)


class LiveReporter(PlainReporter):
    """A rich live display on the terminal: bar, counts, ETA, active workers, memory, CPU, pause reason."""

    def __init__(self, out: Console, err: Console, as_json: bool = False) -> None:
        super().__init__(out, err, as_json)
        self.bar = Progress(TextColumn("[bold]Transcribing"), BarColumn(), MofNCompleteColumn(), console=err)
        self.task_id = self.bar.add_task("batch", total=None)
        self.live: Live | None = None

    def begin(self, total: int) -> None:
        """Show the display."""
        self.bar.update(self.task_id, total=total)
        self.live = Live(Group(self.bar), console=self.err, refresh_per_second=4, transient=False)
        self.live.start()

    def update(self, progress: BatchProgress, details: list[str] | None = None) -> None:
        """Refresh counts and figures (and any detail lines under them, e.g. what each running job does)."""
        self.bar.update(self.task_id, total=progress.total_tasks, completed=progress.finished_tasks)
        if self.live is not None:
            lines = [Text(line) for line in details or []]
            self.live.update(Group(self.bar, Text(live_info(progress)), *lines), refresh=True)

    def close(self) -> None:
        """Stop the display, leaving its last frame on screen."""
        if self.live is not None:
            self.live.stop()
            self.live = None

    def finish(self, result: BatchResult, report: Path | None) -> None:
        """Close the display, then print the summary."""
        self.close()
        super().finish(result, report)


def live_info(p: BatchProgress) -> str:
    """The figures next to the bar."""
    text = (f"ok {p.completed_tasks} | failed {p.failed_tasks} | ETA {format_eta(p.eta_seconds)} | "
            f"workers {p.active_workers} | {p.memory_usage_mb:.1f}MB | CPU {p.cpu_usage_percent:.1f}%")  # fmt: skip
    return text + (f" | paused: {p.paused_reason}" if p.paused_reason else "")


def failure_lines(r: BatchResult) -> list[str]:
    """One unwrapped line per failed input: `FAILED source (stage): reason`."""
    return [f"FAILED {f['source']} ({f['type']}): {f['reason']}" for f in r.failures]


def summary_tables(r: BatchResult) -> list[Table]:
    """The batch result as tables: figures, failures (one-line reason each), warnings."""
    figures = Table(title="Batch result", show_header=False)
    conf = r.quality_metrics.get("average_confidence")
    rows: list[tuple[str, Any]] = [
        ("Inputs", r.total_tasks), ("Succeeded", r.completed_tasks), ("Failed", r.failed_tasks),
        ("Already done", r.skipped_tasks), ("Left queued", r.pending_tasks),
        ("Success rate", f"{r.success_rate:.1f}%"), ("Processing time", f"{r.processing_time:.1f}s"),
        ("Peak memory", f"{r.peak_memory_mb:.1f}MB"), ("Peak CPU", f"{r.peak_cpu_percent:.1f}%"),
        ("Average confidence", "--" if conf is None else f"{conf:.2f}"),
    ]  # fmt: skip
    if r.pending_reason:
        rows.append(("Why left", r.pending_reason))
    for name, value in rows:
        figures.add_row(name, str(value))
    tables = [figures]
    if r.warnings:
        warned = Table("Warning", "Inputs", title="Quality warnings")
        for w in r.warnings:
            warned.add_row(str(w["warning"]), str(w["count"]))
        tables.append(warned)
    return tables
