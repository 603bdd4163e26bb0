"""Serve the dashboard with uvicorn: from `traxctl dashboard`, or in a thread of `traxd run --dashboard`."""

from __future__ import annotations

import threading
from typing import Any

from traxd.access import required_token
from traxd.config import Settings
from traxd.dashboard.app import Dashboard, JobActions, create_app
from traxd.database import reader_on
from traxd.queue.store import Store

DEFAULT_PORT = 8765


def dashboard_for(settings: Settings, store: Store, token: str | None, jobs: JobActions) -> Dashboard:
    """The dashboard's shared state on this store: reads on pooled plain connections, writes through the store,
    retry and cancel through `jobs` (the same as traxctl's)."""
    inboxes = tuple(str(w.inbox) for w in settings.watch)
    return Dashboard(store, lambda: reader_on(store), jobs, settings.lease_seconds, inboxes, token, home=settings.home)


def check_binding(host: str, token: str | None) -> str | None:
    """The dashboard's token to require (traxd.access.required_token for its --token)."""
    return required_token(host, token, "--token")


def make_server(dash: Dashboard, host: str, port: int) -> Any:
    """A uvicorn server for the dashboard (not started)."""
    import uvicorn

    config = uvicorn.Config(create_app(dash), host=host, port=port, log_level="warning", access_log=False,
                            proxy_headers=False, server_header=False)  # fmt: skip
    return uvicorn.Server(config)


def url_of(host: str, port: int, token: str | None) -> str:
    """The address to open (with the token once, which the browser then keeps in a cookie)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def serve_in_thread(settings: Settings, store: Store, where: tuple[str, int], token: str | None,
                    jobs: JobActions) -> tuple[Any, str]:  # fmt: skip
    """Start the dashboard on a daemon thread (for `traxd run --dashboard`); returns the server and its URL."""
    host, port = where
    token = check_binding(host, token)
    server = make_server(dashboard_for(settings, store, token, jobs), host, port)
    threading.Thread(target=server.run, name="dashboard", daemon=True).start()
    return server, url_of(host, port, token)
