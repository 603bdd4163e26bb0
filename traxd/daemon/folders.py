"""Watch folders: validation (exists, readable, local, not nested in an outbox) and persistence in config.toml."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import tomlkit

from traxd.config import Settings, WatchFolder
from traxd.errors import UsageError, UserError
from traxd.outputs import write_text_atomic

NETWORK_FS = frozenset([
    "nfs", "nfs4", "cifs", "smbfs", "smb", "smb2", "smb3", "afpfs", "webdav", "davfs", "fuse.sshfs", "sshfs", "9p",
    "ncpfs", "afs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse", "fuse.smbnetfs",
])  # fmt: skip


def fs_type(path: Path) -> str | None:
    """The filesystem type of the mount that holds `path` (longest matching mount point)."""
    target = os.path.realpath(path)
    best, kind = "", None
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint.rstrip("/") or "/"
        if (target == mount or target.startswith(mount + "/") or mount == "/") and len(mount) >= len(best):
            best, kind = mount, part.fstype
    return kind


def is_network_fs(kind: str | None) -> bool:
    """True for NFS, SMB, AFP, WebDAV, sshfs and friends, where file events are unreliable."""
    return kind is not None and (kind.lower() in NETWORK_FS or kind.lower().startswith(("nfs", "smb", "cifs")))


def _nested(a: Path, b: Path) -> bool:
    return a == b or b in a.parents or a in b.parents


def check_inbox(inbox: Path) -> Path:
    """The resolved inbox, or a UsageError naming what is wrong with it and the fix."""
    path = Path(os.path.realpath(inbox.expanduser()))
    if not path.exists():
        raise UsageError(f"inbox {path} does not exist: create it first (mkdir -p '{path}')")
    if not path.is_dir():
        raise UsageError(f"inbox {path} is not a folder: give a folder to watch")
    if not os.access(path, os.R_OK | os.X_OK):
        raise UsageError(f"inbox {path} is not readable: fix its permissions (chmod u+rx '{path}')")
    kind = fs_type(path)
    if is_network_fs(kind):
        raise UsageError(f"inbox {path} is on a network filesystem ({kind}): file events are unreliable there; "
                         "watch a local folder and copy files into it")  # fmt: skip
    return path


def check_new_watch(inbox: Path, outbox: Path, existing: Sequence[WatchFolder]) -> WatchFolder:
    """Validate a new inbox/outbox pair against itself and the folders already watched."""
    inbox = check_inbox(inbox)
    outbox = Path(os.path.realpath(outbox.expanduser()))
    if _nested(inbox, outbox):
        raise UsageError(f"outbox {outbox} and inbox {inbox} overlap: transcripts would be ingested again; "
                         "choose an outbox outside the inbox (--outbox)")  # fmt: skip
    for w in existing:
        old_in, old_out = Path(os.path.realpath(w.inbox)), Path(os.path.realpath(w.outbox))
        if old_in == inbox:
            raise UserError(f"{inbox} is already watched (outbox {old_out}); `traxctl watch list` shows all")
        if _nested(inbox, old_out) or _nested(outbox, old_in):
            raise UsageError(f"{inbox} -> {outbox} overlaps the watched pair {old_in} -> {old_out}: an inbox may "
                             "not be inside an outbox or the other way round")  # fmt: skip
    return WatchFolder(inbox, outbox)


def config_path(settings: Settings) -> Path:
    """$TRAX_HOME/config.toml."""
    return settings.home / "config.toml"


def add_watch(settings: Settings, inbox: Path, outbox: Path | None, **options: Any) -> WatchFolder:
    """Validate and persist a new watch folder (the outbox is created 0700 if missing); `options` are its own
    job options (word_timestamps, translate_to, summarize; None = the daemon's setting)."""
    folder = check_new_watch(inbox, outbox or inbox.expanduser().parent / "outbox", settings.watch)
    folder = dataclasses.replace(folder, **{k: v for k, v in options.items() if v is not None})
    try:
        folder.outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create outbox {folder.outbox}: {exc.strerror}") from None
    if not os.access(folder.outbox, os.W_OK | os.X_OK):
        raise UsageError(f"outbox {folder.outbox} is not writable: fix its permissions or pick another (--outbox)")
    write_watch(settings, [*settings.watch, folder])
    return folder


def remove_watch(settings: Settings, inbox: Path) -> WatchFolder:
    """Stop watching an inbox (its files and transcripts stay where they are)."""
    target = Path(os.path.realpath(inbox.expanduser()))
    keep = [w for w in settings.watch if Path(os.path.realpath(w.inbox)) != target]
    if len(keep) == len(settings.watch):
        raise UserError(f"{target} is not watched; `traxctl watch list` shows the watched folders")
    write_watch(settings, keep)
    return next(w for w in settings.watch if Path(os.path.realpath(w.inbox)) == target)


def write_watch(settings: Settings, folders: Sequence[WatchFolder]) -> None:
    """Rewrite the `watch` key of config.toml (other keys and comments kept), atomically and 0600."""
    path = config_path(settings)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a first `watch add` creates the home
    except OSError as exc:
        raise UserError(f"cannot create the Trax home {path.parent}: {exc.strerror} (check TRAX_HOME)") from None
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    items = tomlkit.array()
    for w in folders:
        table = tomlkit.inline_table()
        table.update({"inbox": str(w.inbox), "outbox": str(w.outbox), **w.options()})
        items.append(table)
    doc["watch"] = items.multiline(True)
    write_text_atomic(path, tomlkit.dumps(doc), mode=0o600)
