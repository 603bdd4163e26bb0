"""The composition root of traxd: settings, home, DB, logs, the pool, ingestion, signals, a clean exit."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import FrameType
from typing import Any

from traxd import logging as trax_logging
from traxd.config import LIVE_FIELDS, Settings, WatchFolder, load_settings, with_changes
from traxd.daemon.children import kill_children, reap_orphans
from traxd.daemon.home import DaemonLock, connections_for
from traxd.daemon.jobcontrol import JobControl
from traxd.daemon.machine import MachineGate, machine_gate
from traxd.daemon.pool import Pool
from traxd.daemon.pool_setup import daemon_pool
from traxd.daemon.runner import Outcome
from traxd.daemon.scratch import sweep_at_start
from traxd.database import open_store, prepare_home
from traxd.errors import ConfigError
from traxd.handlers import load_registry
from traxd.ingest.enqueue import Ingestor
from traxd.ingest.watcher import Watcher
from traxd.joboptions import job_options
from traxd.queue.store import Store
from traxd.types import GLOBAL_SCOPE, ControlState

log = trax_logging.get_logger("service")

def setup_logging(settings: Settings) -> None:
    """JSON lines to $TRAX_HOME/logs/traxd.log, readable lines on a TTY, every known secret redacted."""
    trax_logging.register_secrets(settings.secrets)
    trax_logging.register_secrets(os.environ.get(var) for var in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY"))
    trax_logging.configure(settings.log_level, settings.logs_dir)
    trax_logging.install_excepthooks()


def reset_stop_request(store: Store) -> None:
    """A leftover `stopping` is from the previous run: the user started us, so run."""
    glob = store.controls().get(GLOBAL_SCOPE)
    if glob is not None and glob.state is ControlState.STOPPING:
        store.set_control(GLOBAL_SCOPE, ControlState.RUNNING, None)
        log.info("stop_request_cleared")


@dataclass
class _Signals:
    """Signal handlers only set flags on the pool: first = graceful stop, second = stop now."""

    pool: Pool
    count: int = 0
    previous: dict[int, Any] = field(default_factory=dict)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, _signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.pool.request_stop(now=self.count > 1)

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def live_changes(old: Settings, new: Settings) -> tuple[Settings, list[str], list[str]]:
    """`old` with the live fields of `new`; the names of the live fields that changed and of those needing a restart."""
    changed = [f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name)]
    live = [n for n in changed if n in LIVE_FIELDS]
    merged = with_changes(old, **{n: getattr(new, n) for n in live})
    return merged, live, [n for n in changed if n not in LIVE_FIELDS and n != "watch"]


class ConfigWatch:
    """Re-reads config.toml when it changes: watch folders (`traxctl watch add`), and the settings the next tasks
    use (models, language, keys …), handed to `on_settings`."""

    def __init__(self, settings: Settings, overrides: Mapping[str, Any],
                 on_settings: Callable[[Settings], None] | None = None) -> None:  # fmt: skip
        self.path = settings.home / "config.toml"
        self.overrides = dict(overrides)
        self.settings = settings
        self.on_settings = on_settings
        self._stamp = self._read_stamp()

    def _read_stamp(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def __call__(self) -> Sequence[WatchFolder] | None:
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        try:
            settings = load_settings(self.overrides)
        except ConfigError as exc:
            log.warning("config_reload_failed", error=str(exc))
            return None
        prepare_home(settings)
        log.info("watch_folders_reloaded", inboxes=[str(w.inbox) for w in settings.watch])
        self._apply(settings)
        return settings.watch

    def _apply(self, new: Settings) -> None:
        trax_logging.register_secrets(new.secrets)
        self.settings, live, restart = live_changes(self.settings, new)
        if live:
            log.info("settings_reloaded", changed=live)  # names only: some of them are keys
            if self.on_settings is not None:
                self.on_settings(self.settings)
        if restart:
            log.warning("settings_need_restart", changed=restart)


def inbox_options(settings: Settings) -> dict[str, Any]:
    """The job options of inbox files (a watch folder's own options go over them): the settings of the moment."""
    return job_options(settings).as_dict()


def build_watcher(settings: Settings, store: Store, pool: Pool, overrides: Mapping[str, Any]) -> Watcher:
    """Inboxes -> settle -> Store.create_job, waking the pool for each new task; config.toml changes reach both."""
    ingestor = Ingestor(store, group="daemon", options=inbox_options(settings),
                        on_queued=lambda q: pool.wake() if q.created else None,
                        affinity=None if settings.shared_storage else pool.owner.host)  # fmt: skip

    def reloaded(new: Settings) -> None:
        pool.use_settings(new)
        ingestor.options = inbox_options(new)

    return Watcher(
        settings.watch, ingestor, settle_seconds=settings.settle_seconds, rescan_seconds=settings.rescan_seconds,
        excluded=(settings.tmp_dir, settings.logs_dir), folders_source=ConfigWatch(settings, overrides, reloaded),
        crashed=pool.background_failed,
    )  # fmt: skip


def build_pool(settings: Settings, store: Store, machine: MachineGate | None = None,
               on_outcome: Callable[[Outcome, bool], None] | None = None) -> Pool:  # fmt: skip
    """The pool with the real (or test) handlers, set up from the settings like every other pool."""
    return daemon_pool(settings, store, load_registry(settings), machine, on_outcome)


def run_daemon(
    overrides: Mapping[str, Any] | None = None, drain: bool = False, dashboard: Mapping[str, Any] | None = None
) -> int:
    """`traxd run`: start, run until stopped (signal, `traxctl stop`, or drained), exit 0; optionally the dashboard
    and (`serve` in the settings) OpenAI's transcription API."""
    overrides = dict(overrides or {})
    settings = load_settings(overrides)
    os.umask(0o077)
    prepare_home(settings)
    with DaemonLock(settings.home):
        setup_logging(settings)
        store = open_store(settings, pool_size=connections_for(settings.workers))
        server = _start_dashboard(settings, store, dashboard) if dashboard else None
        try:
            return _serve(settings, store, overrides, drain)
        finally:
            if server is not None:
                server.should_exit = True
            store.engine.dispose()


def _start_dashboard(settings: Settings, store: Store, where: Mapping[str, Any]) -> Any:
    from traxd.dashboard.server import serve_in_thread

    server, url = serve_in_thread(settings, store, (where["host"], int(where["port"])),
                                  os.environ.get("TRAX_DASHBOARD_TOKEN"), JobControl(store, settings.tmp_dir, settings))  # fmt: skip
    log.info("dashboard_started", host=where["host"], port=where["port"])
    sys.stderr.write(f"dashboard on {url}\n")
    return server


def _start_serving(settings: Settings, store: Store, pool: Pool, bell: Any) -> Any:
    """OpenAI's transcription API on a thread: each request a job this pool is woken for; the pool rings `bell` as
    runs settle, so a waiting request answers as soon as its job ends."""
    from traxd.serve.server import Served

    served = Served(settings, store, JobControl(store, settings.tmp_dir, settings).retry_job,
                    None if settings.shared_storage else pool.owner.host, lambda q: pool.wake() if q.created else None,
                    bell=bell)  # fmt: skip
    served.start()
    log.info("serving_started", host=served.host, port=served.port, token=served.token is not None)
    sys.stderr.write(served.banner())
    return served


def _bell() -> Any:
    from traxd.serve.bell import Bell

    return Bell()


def _serve(settings: Settings, store: Store, overrides: Mapping[str, Any], drain: bool) -> int:
    reset_stop_request(store)
    reap_orphans(settings.tmp_dir)
    sweep_at_start(store, settings.tmp_dir, [w.outbox for w in settings.watch])
    machine = machine_gate(settings)
    bell = _bell() if settings.serve else None
    pool = build_pool(settings, store, machine, bell.ring if bell is not None else None)
    watcher = build_watcher(settings, store, pool, overrides)
    served = _start_serving(settings, store, pool, bell) if settings.serve else None
    signals = _Signals(pool)
    signals.install()
    log.info("daemon_started", pid=os.getpid(), home=str(settings.home), workers=settings.workers,
             inboxes=[str(w.inbox) for w in settings.watch], drain=drain)  # fmt: skip
    try:
        if drain:
            watcher.ingest_pending()
        else:
            watcher.start()
        stats = pool.run(drain=drain)
    finally:
        if served is not None:
            served.stop()
        watcher.stop()
        signals.restore()
        kill_children()
        machine.close()
    log.info("daemon_stopped", claimed=stats.claimed, succeeded=stats.succeeded, failed=stats.failed,
             released=stats.released, lost=stats.lost, crashed=stats.crashed)  # fmt: skip
    if stats.crashed is not None:  # exit 1: launchd and systemd start a daemon again after a failure
        sys.stderr.write(f"error: traxd stopped after a bug in its {stats.crashed} (the log has the traceback)\n")
        return 1
    return 0


def main_thread_exit(code: int) -> None:
    """Exit now even if a handler thread is stuck in a call that ignores cancellation (leases are released)."""
    trax_logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        os._exit(code)
