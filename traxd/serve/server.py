"""Run the OpenAI-compatible server with uvicorn: in a thread of `traxd run --serve`, or alone (`traxctl serve`)
queueing into the database for the daemons to work off."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from traxd.access import LOOPBACK_NAMES, required_token
from traxd.config import Settings, serve_address
from traxd.database import reader_on
from traxd.ingest.enqueue import Queued
from traxd.logging import get_logger
from traxd.queue.store import Store
from traxd.serve.app import create_app
from traxd.serve.bell import Bell
from traxd.serve.jobs import Requests

log = get_logger("serve")
SWEEP_SECONDS = 3600.0


def machine_names(host: str) -> list[str]:
    """The Host header values that name this machine: loopback, its names, every address of its interfaces."""
    import psutil

    names = {*LOOPBACK_NAMES, host, socket.gethostname(), socket.getfqdn()}
    for addresses in psutil.net_if_addrs().values():
        for a in addresses:
            if a.family in (socket.AF_INET, socket.AF_INET6):
                ip = a.address.split("%")[0]
                names.update({ip, f"[{ip}]"} if ":" in ip else {ip})
    return sorted(n for n in names if n)


class Served:
    """A running server: its uvicorn server, address and token (a new one is printed once when made here)."""

    def __init__(self, settings: Settings, store: Store, retry_job: Callable[[int], int], affinity: str | None,
                 on_queued: Callable[[Queued], None] | None = None, where: str | None = None,
                 bell: Bell | None = None) -> None:  # fmt: skip
        import uvicorn

        self.host, self.port = serve_address(where or settings.serve or "")
        self.token = required_token(self.host, settings.serve_token, "serve_token (TRAX_SERVE_TOKEN)")
        self.made_token = self.token is not None and settings.serve_token is None  # shown once: nobody knows it yet
        requests = Requests(settings, store, lambda: reader_on(store), retry_job, on_queued, affinity)
        self.requests, self.keep_seconds = requests, settings.serve_keep_uploads_hours * 3600
        self._stopped = threading.Event()
        limit = int(settings.serve_max_upload_mb * 1024 * 1024)
        app = create_app(requests, self.token, limit, machine_names(self.host), bell)
        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning", access_log=False,
                                proxy_headers=False, server_header=False, timeout_graceful_shutdown=2)  # fmt: skip
        self.server: Any = uvicorn.Server(config)

    @property
    def url(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/v1"

    def banner(self) -> str:
        """What to tell the user: the base URL, and the token when one is needed."""
        token = f" (api_key: {self.token})" if self.made_token else " (api_key: the serve_token)" if self.token else ""
        return f"OpenAI-compatible API on {self.url}{token}\n"

    def start(self) -> None:
        """Serve on a daemon thread (the daemon's own work goes on in the main thread)."""
        threading.Thread(target=self.server.run, name="serve", daemon=True).start()
        threading.Thread(target=self._sweep, name="serve-sweep", daemon=True).start()

    def run(self) -> None:
        """Serve in this thread until SIGINT/SIGTERM."""
        threading.Thread(target=self._sweep, name="serve-sweep", daemon=True).start()
        self.server.run()
        self._stopped.set()

    def stop(self) -> None:
        self.server.should_exit = True
        self._stopped.set()

    def _sweep(self) -> None:
        """Old uploads of finished requests go, at start and then every hour (a failure is logged, not fatal)."""
        while True:
            try:
                removed = self.requests.sweep_uploads(self.keep_seconds, time.time())
                if removed:
                    log.info("uploads_removed", count=removed)
            except Exception as exc:  # noqa: BLE001 - a database or disk hiccup: try again next hour
                log.warning("upload_sweep_failed", error=str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
            if self._stopped.wait(SWEEP_SECONDS):
                return
