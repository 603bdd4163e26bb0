"""`traxctl export JOB --format F [--to PATH]`: a finished job's transcript in any format, from its stored NAME.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from traxd.cli.common import one_line_errors, settings, store_for
from traxd.errors import UserError


@one_line_errors
def export(
    job_id: Annotated[int, typer.Argument(
        metavar="JOB", help="The job's id: job_id in `traxctl show ID` and `list --json`.")],
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT",
                                     help="txt, json, srt, vtt, docx, md, csv, tsv or jsonl.")],
    to: Annotated[Path | None, typer.Option(
        "--to", metavar="PATH", help="A file or a folder (default: beside NAME.json, as NAME.FORMAT).")] = None,
) -> None:
    """Write a finished job's transcript in FORMAT from what is stored, without transcribing again."""
    from traxd import job_exports, outputs

    name = job_exports.check_format(fmt)
    with store_for(settings()) as store:
        if store.get_job(job_id) is None:
            raise UserError(f"no job #{job_id} (traxctl list --json shows each task's job_id)")
        tasks = store.tasks_of_job(job_id)
    problem = job_exports.unfinished(job_id, tasks)
    json_path = job_exports.transcript_json(tasks)
    if problem or json_path is None:
        raise UserError(problem or f"job #{job_id} has no transcript")
    doc = job_exports.stored_document(json_path)
    target = _target(to, job_exports.export_name(json_path, name), json_path.parent)
    try:
        outputs.write_text_atomic(target, outputs.render(name, doc))
    except OSError as exc:
        raise UserError(f"cannot write {target}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {target}")


def _target(to: Path | None, file_name: str, beside: Path) -> Path:
    """--to as given (a folder gets NAME.FORMAT inside it), else NAME.FORMAT beside NAME.json."""
    if to is None:
        return beside / file_name
    to = to.expanduser()
    return to / file_name if to.is_dir() else to
