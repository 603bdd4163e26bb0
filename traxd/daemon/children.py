"""No orphans: kill this daemon's children at exit, and reap FFmpeg & co. left behind by a killed predecessor."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from traxd.logging import get_logger

log = get_logger("children")

_SUBREAPERS = {"systemd", "launchd", "init"}


def kill_children(timeout: float = 3.0) -> int:
    """Terminate every descendant of this process, then kill the ones still alive after `timeout`."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return 0
    return _terminate(children, timeout)


def _terminate(procs: list[psutil.Process], timeout: float) -> int:
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            continue
    _gone, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue
    if procs:
        log.info("children_stopped", count=len(procs), killed=len(alive))
    return len(procs)


def reap_orphans(scratch: Path, timeout: float = 3.0) -> int:
    """Kill orphaned processes of this user whose command line points into our scratch folder."""
    marker = str(scratch)
    uid = os.getuid()
    orphans = []
    for proc in psutil.process_iter(["pid", "ppid", "cmdline", "uids"]):
        info = proc.info
        if info["pid"] == os.getpid() or not info["uids"] or info["uids"].real != uid:
            continue
        if any(marker in str(arg) for arg in info["cmdline"] or ()) and _orphaned(info["ppid"]):
            orphans.append(proc)
    if orphans:
        log.warning("orphans_reaped", pids=[p.pid for p in orphans])
    return _terminate(orphans, timeout)


def _orphaned(ppid: int | None) -> bool:
    """Re-parented to init or a subreaper: whoever started it is gone."""
    if not ppid or ppid == 1:
        return True
    try:
        return psutil.Process(ppid).name() in _SUBREAPERS
    except psutil.Error:
        return True
