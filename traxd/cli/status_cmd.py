"""`traxctl status` without Typer: the command users type most starts with only what it reads and prints.

`traxctl` hands a plain `status [--json] [--all] [--since S] [--follow] [--interval N] [--count N]` line to
`fast_status` before it loads the Typer app (Typer pulls in pydantic and click, a third of a second); anything
else (`--help`, a typo, a bad value) goes to the Typer command, which says what is wrong the usual way and then
calls `run_status` too. Both are made from one table, OPTIONS: names, types, defaults, limits and help.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traxd.cli.common import report_error, settings
from traxd.database import reader_for
from traxd.errors import UsageError, UserError
from traxd.progress import format_eta
from traxd.types import GLOBAL_SCOPE, ControlState

WAITING_SHOWN = 10  # waiting jobs listed by name; the rest are counted


@dataclass(frozen=True)
class StatusOption:
    """One option of `traxctl status`, for both parsers."""

    dest: str  # run_status's parameter
    flags: tuple[str, ...]
    kind: type  # bool: a flag
    default: Any
    help: str
    metavar: str | None = None
    minimum: float | None = None
    hidden: bool = False


OPTIONS = (
    StatusOption("as_json", ("--json",), bool, False, "Machine-readable output."),
    StatusOption("follow", ("--follow", "-f"), bool, False, "Keep reporting until Ctrl-C (live on a terminal)."),
    StatusOption("interval", ("--interval",), float, 5.0, "Seconds between reports with --follow.", "SECONDS", 0.1),
    StatusOption("all_jobs", ("--all",), bool, False, "Every job in the database's history."),
    StatusOption("since", ("--since",), str, None, "Jobs created since: 2h, 30m, 7d or a date (2026-11-30T08:00).",
                 "WHEN"),
    StatusOption("count", ("--count",), int, 0, "Stop --follow after this many reports.", "N", hidden=True),
)  # fmt: skip


class _NotMine(Exception):
    """The line is not a plain status line: Typer takes it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise _NotMine(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="traxctl status", add_help=False, allow_abbrev=False, exit_on_error=False)
    for o in OPTIONS:
        if o.kind is bool:
            p.add_argument(*o.flags, dest=o.dest, action="store_true")
        else:
            p.add_argument(*o.flags, dest=o.dest, type=o.kind, default=o.default)
    return p


def _in_range(args: dict[str, Any]) -> bool:
    """Every value at or above its option's minimum (Typer checks the same limits, with its message)."""
    return all(o.minimum is None or args[o.dest] >= o.minimum for o in OPTIONS)


def fast_status(argv: list[str]) -> int | None:
    """Run a plain `status …` line and return its exit code; None when the line is for the Typer app."""
    if not argv or argv[0] != "status":
        return None
    try:
        args = vars(_parser().parse_args(argv[1:]))
    except (_NotMine, argparse.ArgumentError):
        return None
    if not _in_range(args):
        return None
    try:
        run_status(**args)
    except (UserError, KeyboardInterrupt) as exc:
        return report_error(exc)
    return 0


def run_status(as_json: bool, follow: bool, interval: float, all_jobs: bool, since: str | None, count: int) -> None:
    """The status command (both entries): one report, or one every `interval` seconds with --follow."""
    from traxd.daemon.status import ALL, CURRENT, SINCE
    from traxd.handlers.common import DEFAULT_LOCAL_MODEL
    from traxd.typedtime import parse_moment

    if all_jobs and since is not None:
        raise UsageError("give --all or --since, not both")
    s = settings()
    scope, start = (ALL, None) if all_jobs else (CURRENT, None) if since is None else (SINCE, parse_moment(since, time.time()))
    model = s.transcribe_model if s.effective_backend == "openai" else None
    local = (s.local_model or DEFAULT_LOCAL_MODEL) if s.effective_backend == "local" else None  # its ETA is predicted
    with reader_for(s) as reader:
        def report() -> Any:
            return _collect(reader, s.lease_seconds, (model, local), scope, start, s.home)

        if follow and not as_json:
            _follow(report, interval, count)
            return
        shown = 0
        while True:
            status_ = report()
            print(json.dumps(status_.as_dict(), indent=2, default=str)) if as_json else _print_status(status_)
            sys.stdout.flush()
            shown += 1
            if not follow or (count and shown >= count):
                return
            time.sleep(interval)


def _collect(reader: Any, lease_seconds: float, models: tuple[str | None, str | None], scope: str, start: float | None,
             home: Path) -> Any:  # fmt: skip
    from dataclasses import replace

    from traxd.daemon.outage import outage_warning
    from traxd.daemon.status import collect
    from traxd.waiting import read_note

    status = replace(collect(reader, lease_seconds, time.time(), models[0], scope, start, models[1]),
                     waiting=read_note(home))  # fmt: skip
    # This machine's daemon may not reach a database we can read (SQLite's write lock held, a full disk).
    note = outage_warning(home / "spool")
    return replace(status, warnings=(*status.warnings, note)) if note else status


def _follow(report: Callable[[], Any], interval: float, count: int) -> None:
    """A live display on a terminal (the look of `trax batch`); the progress line every interval otherwise."""
    from traxd.progress import progress_line

    live = None
    if sys.stdout.isatty():
        from rich.console import Console

        from traxd.cli.batch_view import LiveReporter

        out = Console(highlight=False, soft_wrap=True)
        live = LiveReporter(out, out)
        live.begin(0)
    shown = 0
    try:
        while not count or shown < count:
            if shown:
                time.sleep(interval)
            st = report()
            if live is not None:
                live.update(st.progress, _detail_lines(st))
            else:
                print(progress_line(st.progress), flush=True)
            shown += 1
    finally:
        if live is not None:
            live.close()


def _print_status(report: Any) -> None:
    from traxd.progress import progress_line

    lines = [progress_line(report.progress), *_detail_lines(report)]
    glob = report.controls.get(GLOBAL_SCOPE)
    if glob is not None and glob.state is ControlState.PAUSED:
        lines.append(f"Paused: {glob.reason or 'paused'} (traxctl resume)")
    for scope, reason in report.type_pauses.items():
        lines.append(f"Paused {scope} tasks: {reason or 'paused'} (fix it, then traxctl resume)")
    lines += [f"Warning: {warning}" for warning in report.warnings]
    print("\n".join(lines))


def _detail_lines(report: Any) -> list[str]:
    """What the jobs are, what each running one is doing, and the daemons with the leases they hold."""
    p = report.progress
    head = (f"State: {p.state} | {_scope_words(report)}: {p.total_tasks} jobs | done {p.completed_tasks} | "
            f"failed {p.failed_tasks} | running {p.active_tasks} | queued {p.queued_tasks} | "
            f"cancelled {p.cancelled_tasks}")  # fmt: skip
    lines = [head]
    for r in report.running:
        lines.append(f"  #{r.job_id} {r.name}: {r.stage} (attempt {r.attempt}, {format_eta(r.seconds)})")
    for w in report.waiting_jobs[:WAITING_SHOWN]:
        lines.append(f"  #{w.job_id} {w.name}: {w.reason}")
    if len(report.waiting_jobs) > WAITING_SHOWN:
        lines.append(f"  … and {len(report.waiting_jobs) - WAITING_SHOWN} more waiting (traxctl list)")
    for h in report.heartbeats:
        flag = " [DEAD]" if h.dead else (" [STALE]" if h.stale else "")
        lines.append(f"Daemon {h.info.host} pid {h.info.pid}: {h.busy}/{h.info.slots} busy, {h.info.rss_mb:.1f}MB, "
                     f"{h.info.cpu_percent:.1f}% CPU, seen {h.age:.0f}s ago{flag}")  # fmt: skip
    lines += _machine_lines(report.waiting)
    if report.unowned:
        lines.append(f"{report.unowned} task(s) run under no live daemon (trax batch, or a lost daemon whose "
                     "lease will expire and be rescued)")  # fmt: skip
    if not report.heartbeats:
        lines.append("No daemon is running (traxd run, or traxctl service install).")
    return lines


def _machine_lines(waiting: Any) -> list[str]:
    """What this machine's daemon holds back for: "waiting: on battery (42%), policy ac", and heat."""
    if waiting is None:
        return []
    lines = [f"Waiting: {waiting.reason}"] if waiting.reason else []
    if waiting.local_slots:
        lines.append(f"Thermal pressure {waiting.thermal}: local slots {waiting.local_slots}")
    if waiting.memory:
        lines.append(f"Local transcription {waiting.memory}")
    return lines


def _scope_words(report: Any) -> str:
    from traxd.daemon.status import ALL, CURRENT

    if report.scope == ALL:
        return "all history"
    when = "--" if report.since is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.since))
    return f"current work since {when}" if report.scope == CURRENT else f"since {when}"
