"""Run a real `traxd run` subprocess on a temporary home, and wait on conditions with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from traxd.db.engine import open_engine
from traxd.queue.store import Store

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 90.0


def wait_until(predicate: Callable[[], Any], timeout: float = DEADLINE, what: str = "condition") -> Any:
    """Poll until predicate() is truthy; fail the test with `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


OWN_VARIABLES = ("TRAX_", "OPENAI_", "DEEPSEEK_")  # what a developer's shell may set that would change a test


def clean_env() -> dict[str, str]:
    """This process's environment without Trax's and the APIs' variables (no real key reaches a test)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}


def forget_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove Trax's and the APIs' variables from this process for the test (settings read only what it sets)."""
    for var in [v for v in os.environ if v.startswith(OWN_VARIABLES)]:
        monkeypatch.delenv(var)


def home_env(home: Path, handlers: str | None = "noop", **extra: str) -> dict[str, str]:
    """Environment for a daemon or traxctl subprocess on `home` (no real keys from the developer's shell)."""
    env = clean_env()
    env.update(TRAX_HOME=str(home), TRAX_SETTLE_SECONDS="0.5", TRAX_RESCAN_SECONDS="30", TRAX_LOG_LEVEL="info",
               TRAX_GRACE_SECONDS="10", TRAX_LEASE_SECONDS="6", PYTHONPATH=str(REPO))
    if handlers:
        env["TRAX_TEST_HANDLERS"] = f"tests.daemon_handlers:{handlers}"
    env.update(extra)
    return env


class Daemon:
    """A `traxd run` subprocess; stdout/stderr go to files under the home's parent."""

    def __init__(self, home: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.home = home
        self.env = env
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> Daemon:
        self.runs += 1
        log = self.home.parent / f"daemon-{self.home.name}-{self.runs}.log"
        cmd = [sys.executable, "-m", "traxd.cli.traxd_cmd", "run", *self.args]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        self.log = log
        return self

    def wait_ready(self) -> Daemon:
        """Wait until the first scan ran (the observer is started and logged)."""
        wait_until(lambda: self.log.exists() and "observer_started" in self.log.read_text()
                   or self.proc.poll() is not None, what="daemon start")  # type: ignore[union-attr]
        assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def term(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Clean-up for tests: SIGTERM, then SIGKILL if needed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def open_home_store(home: Path) -> Store:
    """A store on a home's database (opened read/write like traxctl does)."""
    return Store(open_engine(f"sqlite:///{home / 'trax.db'}", pool_size=2))


def traxctl(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `traxctl ARGS` as a separate process."""
    cmd = [sys.executable, "-m", "traxd.cli.traxctl_cmd", *args]
    return subprocess.run(cmd, env=env or home_env(home), cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
