"""Leftovers: a job's chunk folder ($TRAX_HOME/tmp/job-N) goes when the job ends; a start-up sweep takes the rest."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from traxd import outputs
from traxd.logging import get_logger
from traxd.queue.store import Store

log = get_logger("scratch")


def scratch_dir(tmp_dir: Path, job_id: int | None, task_id: int) -> Path:
    """The scratch folder of a task: its job's, or its own for a task without a job."""
    return tmp_dir / (f"job-{job_id}" if job_id is not None else f"task-{task_id}")


def ended(store: Store, kind: str, ident: int) -> bool:
    """True when every task of the job (or the lone task) is finished, in whatever state."""
    tasks = store.tasks_of_job(ident) if kind == "job" else [t for t in [store.get(ident)] if t]
    return all(t.state.terminal for t in tasks)


def remove_if_ended(store: Store, tmp_dir: Path, job_id: int | None, task_id: int) -> bool:
    """Remove the scratch folder of a job that has just ended (succeeded, failed or cancelled)."""
    folder = scratch_dir(tmp_dir, job_id, task_id)
    kind, ident = ("job", job_id) if job_id is not None else ("task", task_id)
    if not folder.exists() or not ended(store, kind, ident):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    log.debug("scratch_removed", folder=str(folder))
    return True


def sweep_scratch(store: Store, tmp_dir: Path) -> int:
    """Remove the scratch folders of jobs and tasks that will not run again (or no longer exist)."""
    removed = 0
    if not tmp_dir.is_dir():
        return 0
    for entry in tmp_dir.iterdir():
        kind, _, ident = entry.name.partition("-")
        if not entry.is_dir() or not ident.isdigit() or kind not in ("job", "task"):
            continue
        if ended(store, kind, int(ident)):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def sweep_temp_outputs(folders: Iterable[Path]) -> int:
    """Remove the temp output files a killed writer left in these folders."""
    return sum(outputs.sweep_temps(Path(f)) for f in set(folders))


def sweep_at_start(store: Store, tmp_dir: Path, outboxes: Iterable[Path]) -> None:
    """The start-up sweep: scratch of ended jobs, temp outputs in the outboxes and in the folders of cut-off runs."""
    folders = {*outboxes, *(Path(d) for d in store.output_dirs_of_running())}
    scratch, temps = sweep_scratch(store, tmp_dir), sweep_temp_outputs(folders)
    if scratch or temps:
        log.info("leftovers_swept", scratch_folders=scratch, temp_files=temps)
