"""The `traxctl` Typer app: status, pause/resume/stop, add, list, show, retry, cancel, export, search, watch, dashboard,
service, doctor (thin commands). The entry point is traxd.cli.traxctl_cmd, which runs a plain `status` without loading this."""

from __future__ import annotations

import inspect
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from traxd.cli import job_options as opt
from traxd.cli.common import fail, one_line_errors, settings, store_for
from traxd.cli.export_cmd import export
from traxd.cli.help_format import PLAIN_HELP
from traxd.cli.notify_cmd import notify_app
from traxd.cli.speakers_cmd import speakers_app
from traxd.cli.status_cmd import OPTIONS as STATUS_OPTIONS
from traxd.cli.status_cmd import StatusOption, run_status
from traxd.errors import UsageError, UserError
from traxd.types import GLOBAL_SCOPE, PRIORITY_NORMAL, ControlState, Task, TaskState

app = typer.Typer(help="traxctl: watch and steer the Trax daemon (works whether it runs or not).",
                  no_args_is_help=True, pretty_exceptions_enable=False, **PLAIN_HELP)  # fmt: skip
watch_app = typer.Typer(help="Inbox folders the daemon watches.", no_args_is_help=True, **PLAIN_HELP)
service_app = typer.Typer(help="The login service (launchd agent on macOS, systemd --user unit on Linux).",
                          no_args_is_help=True, **PLAIN_HELP)  # fmt: skip
app.add_typer(watch_app, name="watch")
app.add_typer(service_app, name="service")
app.add_typer(speakers_app, name="speakers")
app.add_typer(notify_app, name="notify")
app.command("export")(export)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- status -------------------------------------------------------------------------------------
def _typer_parameters(options: tuple[StatusOption, ...]) -> inspect.Signature:
    """Typer parameters for a table of options (`traxctl status` reads the same table without Typer)."""
    params = []
    for o in options:
        kind = o.kind if o.default is not None else o.kind | None
        info = typer.Option(*o.flags, help=o.help, metavar=o.metavar, min=o.minimum, hidden=o.hidden,
                            show_default=o.kind is not bool and o.default is not None)  # fmt: skip
        params.append(inspect.Parameter(o.dest, inspect.Parameter.KEYWORD_ONLY, default=o.default,
                                        annotation=Annotated[kind, info]))  # fmt: skip
    return inspect.Signature(params)


def status(**options: Any) -> None:
    """The current work in jobs (inputs): counts, each running job's stage, ETA, daemons, why the queue is paused.

    The current work is every unfinished job plus the jobs finished since the queue was last idle (when idle:
    the last run). --since and --all show history instead.
    """
    # `traxctl status …` itself runs traxd.cli.status_cmd before this app is loaded; this is the same command
    # for the lines it hands over (and for callers of `app`).
    run_status(**options)


status.__signature__ = _typer_parameters(STATUS_OPTIONS)  # type: ignore[attr-defined]
app.command("status")(one_line_errors(status))


# -- control ------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def pause(reason: Annotated[str, typer.Option(metavar="REASON", help="Shown by status.")] = "paused by traxctl") -> None:
    """Stop claiming new tasks (running ones finish); daemons obey within a second."""
    with store_for(settings()) as store:
        store.set_control(GLOBAL_SCOPE, ControlState.PAUSED, reason)
    typer.echo("paused: no new task starts until `traxctl resume`")


@app.command()
@one_line_errors
def resume() -> None:
    """Run again, lifting the global pause and every per-type pause (e.g. after fixing a key)."""
    with store_for(settings()) as store:
        store.resume_all()
    typer.echo("resumed")


@app.command()
@one_line_errors
def stop(now: Annotated[bool, typer.Option("--now", help="Do not wait for running tasks.")] = False) -> None:
    """Ask every daemon to stop: finish running tasks within the grace period (or not, with --now), exit 0."""
    from traxd.daemon.home import lock_holder

    s = settings()
    with store_for(s) as store:
        store.set_control(GLOBAL_SCOPE, ControlState.STOPPING, "now" if now else "stop requested by traxctl")
    pid = lock_holder(s.home)
    typer.echo(f"stop requested (daemon pid {pid})" if pid else "stop requested (no daemon runs on this home now)")


# -- tasks --------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def add(
    inputs: Annotated[list[str], typer.Argument(metavar="PATH_OR_URL", help="Files, folders or URLs.")],
    priority: Annotated[int, typer.Option(min=0, metavar="N",
                                          help="0 immediate, 1-5 high, 6-10 normal, 11+ low.")] = PRIORITY_NORMAL,
    enhance: opt.Enhance = False,
    language: opt.Language = None,
    model: opt.Model = None,
    chunk_size: opt.ChunkSize = None,
    translate_to: opt.TranslateTo = None,
    summarize: opt.Summarize = None,
    outbox: Annotated[Path | None, typer.Option(metavar="DIR",
                                                help="Where transcripts go (default: first watch folder's).")] = None,
    word_timestamps: opt.WordTimestamps = False,
    diarize: opt.Diarize = False,
    speakers: opt.Speakers = None,
    min_speakers: opt.MinSpeakers = None,
    max_speakers: opt.MaxSpeakers = None,
    vocabulary: opt.Vocabulary = None,
    formats: opt.Formats = None,
    at: opt.At = None,
    not_before: opt.NotBefore = None,
    after: opt.After = None,
) -> None:
    """Queue files, folders (walked like an inbox) or URLs; the same content is never queued twice.

    With --at/--not-before a job waits for its time, with --after for other jobs to succeed."""
    from traxd.ingest.enqueue import Ingestor, Queued, Skipped
    from traxd.ingest.manual import add_inputs
    from traxd.joboptions import job_options

    s = settings(enhance=enhance or None, word_timestamps=word_timestamps or None, diarize=diarize or None,
                 speakers=speakers, min_speakers=min_speakers, max_speakers=max_speakers, translate_to=translate_to,
                 summarize=summarize, formats=formats)  # fmt: skip
    target = _outbox(s, outbox)
    given = {"language": language, "model": model, "chunk_size": chunk_size, "vocabulary": vocabulary}
    options = job_options(s, given).as_dict()
    start = opt.start_time(at, not_before, time.time())
    with store_for(s) as store:
        pin = None if s.shared_storage else socket.gethostname()
        ingestor = Ingestor(store, group="daemon", priority=priority, options=options, affinity=pin,
                            not_before=start, after=tuple(after or ()))  # fmt: skip
        outcomes = add_inputs(ingestor, inputs, target)
    queued = [q for q in outcomes if isinstance(q, Queued)]
    for q in outcomes:
        if isinstance(q, Skipped):
            typer.echo(f"skipped {q.source}: {q.reason}")
            continue
        if q.task.state is TaskState.FAILED:
            typer.echo(f"#{q.task.id} {'not queued' if q.created else 'already failed'}: {q.task.error_message}")
            continue
        what = "queued" if q.created else f"already queued ({q.task.state.value})"
        held = _held(q.job, start, after) if q.created else ""
        typer.echo(f"#{q.task.id} {what} {q.task.type.value} {q.source}{held}")
    if not queued:
        typer.echo("nothing to queue")
    rejected = sum(q.task.state is TaskState.FAILED for q in queued)
    if rejected:
        # The others are queued; the exit code still tells a script that not every input was taken.
        raise fail(f"{rejected} of {len(queued)} input(s) not queued (see above; `traxctl retry ID` once fixed)")


def _held(job: Any, start: float | None, after: list[int] | None) -> str:
    """` (job 7, scheduled for …; waiting for job 3)`: what a new job waits for, with its id for --after."""
    from traxd.job_waits import when

    parts = [f"scheduled for {when(start)}"] if start is not None else []
    parts += [f"waiting for job{'s' if len(after) > 1 else ''} {', '.join(map(str, after))}"] if after else []
    return f" (job {job.id}{', ' if parts else ''}{'; '.join(parts)})"


def _outbox(s: Any, outbox: Path | None) -> Path:
    if outbox is not None:
        path = outbox.expanduser().resolve()
    elif s.watch:
        path = s.watch[0].outbox
    else:
        raise UsageError("no watch folder is configured: give --outbox DIR")
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@app.command("list")
@one_line_errors
def list_(
    state: Annotated[TaskState | None, typer.Option(case_sensitive=False, metavar="STATE", help="Only tasks in this state: queued, running, succeeded, failed or cancelled.")] = None,
    limit: Annotated[int, typer.Option(min=1, metavar="N", help="At most this many, newest first.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Tasks, newest first."""
    from traxd.job_waits import wait_reason

    with store_for(settings()) as store, store.reading() as reader:
        tasks = store.list_tasks(state, limit)
        names = reader.jobs([t.job_id for t in tasks if t.job_id is not None])  # one query, not one per task
        waits = reader.waits([t.job_id for t in tasks if t.job_id is not None and t.state is TaskState.QUEUED], names)
    now = time.time()
    why = {t.id: wait_reason(waits.get(t.job_id or 0), now) if t.state is TaskState.QUEUED else None for t in tasks}
    if as_json:
        _print_json([_task_dict(t, names.get(t.job_id) if t.job_id is not None else None) | {"waiting": why[t.id]}
                     for t in tasks])  # fmt: skip
        return
    table = Table("ID", "Type", "State", "Pri", "Try", "Name", "Error / waiting")
    for t in tasks:
        job = names.get(t.job_id) if t.job_id is not None else None
        note = (t.error_message or "").splitlines()[0][:60] if t.error_message else ""
        table.add_row(str(t.id), t.type.value, t.state.value, str(t.priority), str(t.attempts),
                      job.name if job else "", why[t.id] or note)  # fmt: skip
    _out().print(table)


def _task_dict(t: Task, job: Any) -> dict[str, Any]:
    return {"id": t.id, "type": t.type.value, "state": t.state.value, "priority": t.priority,
            "attempts": t.attempts, "max_retries": t.max_retries, "job_id": t.job_id,
            "name": job.name if job else None, "source": job.source if job else None,
            "output_dir": job.output_dir if job else None, "error_kind": t.error_kind,
            "error_message": t.error_message, "created_at": t.created_at, "finished_at": t.finished_at}  # fmt: skip


@app.command()
@one_line_errors
def show(task_id: Annotated[int, typer.Argument(metavar="ID")], as_json: JsonOpt = False) -> None:
    """One task in full: payload, result, error history, its job."""
    with store_for(settings()) as store:
        task = store.get(task_id)
        if task is None:
            raise UserError(f"no task #{task_id} (traxctl list shows the tasks)")
        job = store.get_job(task.job_id) if task.job_id is not None else None
        found = _speakers(store.tasks_of_job(job.id) if job else [task])
    data = _task_dict(task, job) | {"payload": task.payload, "result": task.result, "errors": task.errors,
                                    "options": job.options if job else None, "speakers": found}  # fmt: skip
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        if value not in (None, [], {}):
            shown = json.dumps(value, default=str) if isinstance(value, (dict, list)) else value
            typer.echo(f"{key}: {shown}")


def _speakers(tasks: list[Task]) -> str | None:
    """The job's speakers and talk time from its DIARIZE result (`A 20.1 s, Ann 18.3 s (score 0.82)`)."""
    from traxd.batching.result import speaker_line

    for t in tasks:
        result = t.result or {}
        if t.type.value == "diarize" and t.state is TaskState.SUCCEEDED and "diarization" in result:
            status = result["diarization"]
            unavailable = None if status.get("status") == "done" else status.get("reason")
            return speaker_line({"source": "", "speakers": result.get("speakers") or [],
                                 "unavailable": unavailable}).removeprefix(": ")  # fmt: skip
    return None


@app.command()
@one_line_errors
def retry(
    task_id: Annotated[int | None, typer.Argument(metavar="ID", help="A failed or cancelled task.")] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Every failed task.")] = False,
) -> None:
    """Queue a failed or cancelled task again with a fresh attempt budget."""
    if (task_id is None) == (not failed):
        raise UsageError("give a task ID or --failed (not both)")
    from traxd.daemon.jobcontrol import JobControl

    s = settings()
    with store_for(s) as store:
        jobs = JobControl(store, s.tmp_dir, s)
        if failed:
            typer.echo(f"{jobs.retry_failed()} failed task(s) queued again")
            return
        assert task_id is not None
        if not jobs.retry(task_id):
            raise UserError(_why_not(store.get(task_id), task_id, "retried", "failed or cancelled"))
    typer.echo(f"#{task_id} queued again")


@app.command()
@one_line_errors
def cancel(task_id: Annotated[int, typer.Argument(metavar="ID")]) -> None:
    """Cancel a queued or running task (a running one stops at its next check)."""
    from traxd.daemon.jobcontrol import JobControl

    s = settings()
    with store_for(s) as store:
        if not JobControl(store, s.tmp_dir, s).cancel(task_id):
            raise UserError(_why_not(store.get(task_id), task_id, "cancelled", "queued or running"))
    typer.echo(f"#{task_id} cancelled")


def _why_not(task: Task | None, task_id: int, verb: str, states: str) -> str:
    if task is None:
        return f"no task #{task_id} (traxctl list shows the tasks)"
    return f"task #{task_id} is {task.state.value}: only {states} tasks can be {verb}"


# -- watch folders ------------------------------------------------------------------------------
@app.command("search")
@one_line_errors
def search_transcripts(
    query: Annotated[str | None, typer.Argument(metavar="QUERY",
                                                help='Words, "a phrase", prefix*, OR, -word, (groups).')] = None,
    since: Annotated[str | None, typer.Option(metavar="WHEN", help="Only transcripts finished in this span (7d, 12h) or since a date.")] = None,
    inbox: Annotated[Path | None, typer.Option(metavar="DIR", help="Only inputs from this folder.")] = None,
    speaker: Annotated[str | None, typer.Option(metavar="NAME", help="Only segments of this speaker.")] = None,
    language: Annotated[str | None, typer.Option(metavar="CODE",
                                                 help="Only transcripts in this language (e.g. en).")] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="At most this many hits, best first.")] = 20,
    as_json: JsonOpt = False,
    reindex: Annotated[bool, typer.Option("--reindex", help="Index every finished transcript again first.")] = False,
    from_dir: Annotated[Path | None, typer.Option("--from", metavar="DIR",
                                                  help="With --reindex: read the .json files here.")] = None,
) -> None:
    """Find words in every finished transcript: file, time, speaker and the matching text, best first."""
    from traxd import archive
    from traxd.searchquery import make_filters

    if query is None and not reindex:
        raise UsageError("give a QUERY to search for (or --reindex)")
    if query is not None:
        make_filters(since, inbox, speaker, language, limit)  # a bad option fails before any work
    with store_for(settings()) as store:
        if reindex:
            done = archive.reindex(store, from_dir.expanduser() if from_dir else None)
            typer.echo(f"indexed {done.transcripts} transcripts ({done.segments} segments)"
                       + (f"; skipped {len(done.skipped)} unreadable" if done.skipped else ""), err=query is not None)
        if query is None:
            return
        hits = archive.search(query, since=since, inbox=inbox, speaker=speaker, language=language, limit=limit,
                              store=store)
    _print_json([_hit_dict(h) for h in hits]) if as_json else _print_hits(hits)


def _hit_dict(h: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return {**asdict(h), "marks": [list(m) for m in h.marks], "marked": h.marked("**", "**"),
            "file": Path(h.source).name or h.name, "at": _clock(h.start)}


def _clock(seconds: float) -> str:
    """mm:ss.s (minutes keep counting past the hour, so a player can seek)."""
    tenths = round(seconds * 10)
    return f"{tenths // 600:02d}:{tenths % 600 // 10:02d}.{tenths % 10}"


def _print_hits(hits: list[Any]) -> None:
    """`file  [mm:ss.s]  speaker: …snippet…` (matches in bold on a terminal, else between **), then the output."""
    if not hits:
        typer.echo("no matches")
        return
    marks = ("\x1b[1m", "\x1b[0m") if sys.stdout.isatty() else ("**", "**")
    for h in hits:
        who = f"{h.speaker}: " if h.speaker else ""
        typer.echo(f"{Path(h.source).name or h.name}  [{_clock(h.start)}]  {who}{h.marked(*marks)}")
        typer.echo(f"    {h.json_path}")


@watch_app.command("add")
@one_line_errors
def watch_add(
    inbox: Annotated[Path, typer.Argument(metavar="INBOX", help="An existing local folder.")],
    outbox: Annotated[Path | None, typer.Option(metavar="DIR",
                                                help="Where its transcripts go (default: INBOX/../outbox).")] = None,
    word_timestamps: opt.WordTimestamps = False,
    translate_to: opt.TranslateTo = None,
    summarize: opt.Summarize = None,
    vocabulary: opt.Vocabulary = None,
    formats: opt.Formats = None,
) -> None:
    """Watch another inbox (saved in config.toml; a running daemon picks it up within seconds).

    The options given here are this folder's own; the others follow the settings when each file is queued."""
    from traxd.daemon.folders import add_watch
    from traxd.exports import parse_formats
    from traxd.translate import parse_codes
    from traxd.vocabulary import parse

    codes = parse_codes(translate_to) if translate_to is not None else None
    terms = parse(vocabulary) if vocabulary is not None else None
    folder = add_watch(settings(), inbox, outbox, word_timestamps=True if word_timestamps else None,
                       translate_to=codes, summarize=summarize, vocabulary=terms,
                       formats=None if formats is None else parse_formats(formats))
    typer.echo(f"watching {folder.inbox} -> {folder.outbox}")


@watch_app.command("remove")
@one_line_errors
def watch_remove(inbox: Annotated[Path, typer.Argument(metavar="INBOX", help="A watched inbox.")]) -> None:
    """Stop watching an inbox (nothing is deleted)."""
    from traxd.daemon.folders import remove_watch

    folder = remove_watch(settings(), inbox)
    typer.echo(f"no longer watching {folder.inbox}")


@watch_app.command("list")
@one_line_errors
def watch_list(as_json: JsonOpt = False) -> None:
    """The watched inboxes and their outboxes."""
    folders = settings().watch
    if as_json:
        _print_json([{"inbox": str(w.inbox), "outbox": str(w.outbox), "exists": w.inbox.is_dir(), **w.options()}
                     for w in folders])  # fmt: skip
        return
    for w in folders:
        words = "  (word timings)" if w.word_timestamps else ""
        typer.echo(f"{w.inbox} -> {w.outbox}{words}" + ("" if w.inbox.is_dir() else "  (missing)"))
    if not folders:
        typer.echo("no watch folders (traxctl watch add DIR)")


# -- dashboard ----------------------------------------------------------------------------------
@app.command()
@one_line_errors
def dashboard(
    host: Annotated[str, typer.Option(metavar="HOST",
                                      help="Address to listen on; anything but loopback needs a token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, metavar="PORT", help="TCP port.")] = 8765,
    token: Annotated[str | None, typer.Option(envvar="TRAX_DASHBOARD_TOKEN", metavar="TOKEN", help="Required on every request "
                                              "(made up and printed when listening beyond loopback).")] = None,
) -> None:
    """Serve the dashboard: counts, throughput, jobs, failures with retry/cancel, daemons and leases, /api, /metrics."""
    from traxd.daemon.jobcontrol import JobControl
    from traxd.dashboard.server import check_binding, dashboard_for, make_server, url_of

    s = settings()
    token = check_binding(host, token)
    with store_for(s) as store:
        server = make_server(dashboard_for(s, store, token, JobControl(store, s.tmp_dir, s)), host, port)
        typer.echo(f"dashboard on {url_of(host, port, token)} (Ctrl-C stops it)")
        server.run()


# -- serve ----------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def serve(
    address: Annotated[str | None, typer.Argument(metavar="[HOST:]PORT",
                                                  help="Where to listen (default: serve in config, else 127.0.0.1:8766).")] = None,
) -> None:
    """Serve OpenAI's transcription API (/v1) that only queues: the daemons sharing this database do the work."""
    from traxd.daemon.jobcontrol import JobControl
    from traxd.daemon.owner import Owner
    from traxd.serve.server import Served

    s = settings()
    with store_for(s) as store:
        served = Served(s, store, JobControl(store, s.tmp_dir, s).retry_job,
                        None if s.shared_storage else Owner.current().host, where=address or s.serve or "8766")  # fmt: skip
        typer.echo(served.banner().rstrip() + " (Ctrl-C stops it)")
        served.run()


# -- doctor -------------------------------------------------------------------------------------
@app.command()
@one_line_errors
def doctor() -> None:
    """Check keys (never shown), FFmpeg, the database, folders, permissions and the backend."""
    from traxd.daemon.doctor import FAIL, run_checks

    checks = run_checks(settings())
    marks = {"ok": "[green]ok[/]  ", "warn": "[yellow]warn[/]", "fail": "[red]FAIL[/]"}
    out = _out()
    for c in checks:
        out.print(f"{marks[c.level]} {c.name}: {c.detail}", markup=True)
    if any(c.level == FAIL for c in checks):
        raise typer.Exit(1)


# -- service ------------------------------------------------------------------------------------
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print what would be written and run; change nothing.")]


@service_app.command("install")
@one_line_errors
def service_install(
    dry_run: DryRun = False,
    process_type: Annotated[str | None, typer.Option(metavar="TYPE", help=(
        "launchd ProcessType: Background, Standard (the default), Adaptive or Interactive "
        "(else process_type in config.toml)."))] = None,
) -> None:  # fmt: skip
    """Write the launchd agent / systemd unit and load it, so traxd runs at login and restarts after a crash."""
    from traxd.daemon import unit

    kind = unit.service_kind()
    plan = unit.plan_install(settings(process_type=process_type), kind, unit.default_dir(kind), os.getuid())
    if dry_run:
        typer.echo(f"# would write {plan.path}\n{plan.content}")
        for cmd in plan.commands:
            typer.echo(f"# would run: {' '.join(cmd)}")
        return
    for line in unit.apply_install(plan, unit.run_command):
        typer.echo(line)
    typer.echo(f"installed {plan.path}; API keys are not in it: keep them in config.toml (0600)")


@service_app.command("uninstall")
@one_line_errors
def service_uninstall(dry_run: DryRun = False) -> None:
    """Stop and remove the login service (the queue and transcripts stay)."""
    from traxd.daemon import unit

    kind = unit.service_kind()
    plan = unit.plan_uninstall(kind, unit.default_dir(kind), os.getuid())
    if dry_run:
        for cmd in plan.commands + plan.after:
            typer.echo(f"# would run: {' '.join(cmd)}")
        typer.echo(f"# would remove {plan.path}")
        return
    for line in unit.apply_uninstall(plan, unit.run_command):
        typer.echo(line)
    typer.echo(f"removed {plan.path}")


@service_app.command("status")
@one_line_errors
def service_status(dry_run: DryRun = False) -> None:
    """Whether the login service is installed, and what launchd/systemd says about it."""
    from traxd.daemon import unit

    kind = unit.service_kind()
    path = unit.default_dir(kind) / (f"{unit.LABEL}.plist" if kind == "launchd" else unit.UNIT_NAME)
    typer.echo(f"{kind}: {path} {'installed' if path.exists() else 'not installed'}")
    cmd = unit.status_command(kind, os.getuid())
    if dry_run or not path.exists():
        typer.echo(f"# {'would run' if dry_run else 'check with'}: {' '.join(cmd)}")
        return
    done = unit.run_command(cmd)
    typer.echo((done.stdout or done.stderr).strip())


__all__ = ["app", "fail"]
