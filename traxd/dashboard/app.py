"""The dashboard: a Starlette app with server-rendered pages (Jinja2, autoescaped), live fragments, /api and /metrics.

Safety: bound to loopback unless a token is given (then every request carries it); state changes need the
CSRF token; names are escaped by the templates; files are served only from a job's outbox or its own source.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import parse_qsl, quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from traxd import job_exports, outputs
from traxd.access import LOOPBACK_NAMES
from traxd.dashboard import data
from traxd.dashboard.metrics import QueueCollector, render
from traxd.errors import UserError
from traxd.exports import FORMATS
from traxd.queue.reads import JOB_STATE_WHERE, Reader
from traxd.queue.store import Store
from traxd.types import GLOBAL_SCOPE, ControlState, TaskType
from traxd.waiting import Waiting, read_note

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
TOKEN_COOKIE = "trax_token"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")  # fmt: skip


class JobActions(Protocol):
    """Retry and cancel as every front end does them (traxd.daemon.jobcontrol.JobControl, handed in by the caller)."""

    def retry_job(self, job_id: int) -> int: ...

    def cancel_job(self, job_id: int) -> int: ...

    def retry_failed(self) -> int: ...


@dataclass
class Dashboard:
    """What the routes share: the store (writes), a reader factory, job actions, the tokens, the outboxes, errors."""

    store: Store
    open_reader: Callable[[], Reader]
    jobs: JobActions
    lease_seconds: float = 30.0
    inboxes: tuple[str, ...] = ()
    token: str | None = None
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    errors: Counter[int] = field(default_factory=Counter)
    clock: data.Clock = field(default_factory=data.Clock)
    summary_ttl: float = 1.0  # the page polls every second: one count per second however many tabs are open
    metrics_ttl: float = 5.0  # Prometheus scrapes every 15 s or more
    home: Path | None = None  # $TRAX_HOME, where this machine's daemon notes what it waits for (power, hours, heat)

    def waiting(self) -> Waiting | None:
        """This machine's daemon's waiting note (traxd/waiting.py), None without one."""
        return read_note(self.home) if self.home is not None else None


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


class Guard(BaseHTTPMiddleware):
    """The token on every request (when set), security headers on every response, error statuses counted."""

    def __init__(self, app: Any, dash: Dashboard) -> None:
        super().__init__(app)
        self.dash = dash

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        token = self.dash.token
        set_cookie = False
        if token is not None:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip() or None
            if not (_same(bearer, token) or _same(request.cookies.get(TOKEN_COOKIE), token)):
                if not _same(request.query_params.get("token"), token):
                    self.dash.errors[401] += 1
                    return PlainTextResponse("a token is required (?token=… once, or Authorization: Bearer …)", 401)
                set_cookie = True
        response = await call_next(request)
        if set_cookie:
            response.set_cookie(TOKEN_COOKIE, token or "", httponly=True, samesite="strict")
        response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "same-origin", "Cache-Control": "no-store"})  # fmt: skip
        if response.status_code >= 400:
            self.dash.errors[response.status_code] += 1
        return response


def create_app(dash: Dashboard) -> Starlette:
    """The ASGI app."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(csrf=dash.csrf, states=data.STATES, types=[t.value for t in TaskType])
    templates.env.filters.update(when=_when, clock=_clock)
    views = Views(dash, templates)
    routes = [
        Route("/", views.overview), Route("/jobs", views.jobs_page), Route("/jobs/{job_id:int}", views.job_page),
        Route("/failed", views.failed_page), Route("/daemons", views.daemons_page),
        Route("/frag/summary", views.frag_summary), Route("/frag/jobs", views.frag_jobs),
        Route("/frag/jobs/{job_id:int}", views.frag_job), Route("/frag/failed", views.frag_failed),
        Route("/frag/daemons", views.frag_daemons),
        Route("/jobs/{job_id:int}/media", views.media), Route("/jobs/{job_id:int}/outputs/{kind}", views.output),
        Route("/jobs/{job_id:int}/export/{fmt}", views.export),
        Route("/api/summary", views.api_summary), Route("/api/jobs", views.api_jobs),
        Route("/api/jobs/{job_id:int}", views.api_job), Route("/api/failed", views.api_failed),
        Route("/api/daemons", views.api_daemons), Route("/metrics", views.metrics),
        Route("/search", views.search_page), Route("/api/search", views.api_search),
        Route("/actions/jobs/{job_id:int}/{action}", views.job_action, methods=["POST"]),
        Route("/actions/failed/retry", views.retry_all, methods=["POST"]),
        Route("/actions/{action}", views.control, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]  # fmt: skip
    # Without a token, only loopback names are answered: a page elsewhere cannot rebind its DNS name to 127.0.0.1
    # and read the dashboard (or its CSRF token) as same-origin.
    hosts = ["*"] if dash.token else list(LOOPBACK_NAMES)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False), Middleware(Guard, dash=dash)]
    return Starlette(routes=routes, middleware=middleware)


def _when(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Views:
    """The route handlers (sync: Starlette runs them in its thread pool)."""

    def __init__(self, dash: Dashboard, templates: Jinja2Templates) -> None:
        self.dash, self.templates = dash, templates
        self._cache: dict[str, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, ttl: float, make: Callable[[], T]) -> T:
        """One computation per `ttl` seconds however many tabs poll (counts over every job are the costly part)."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < ttl:
                return cast(T, hit[1])  # what `make` gave for this key
        value = make()
        with self._lock:
            self._cache[key] = (now, value)
        return value

    def forget(self) -> None:
        """Drop cached figures (after a state change, so the next page shows it)."""
        with self._lock:
            self._cache.clear()

    def _read(self, fn: Callable[..., T], *args: Any) -> T:
        reader = self.dash.open_reader()
        try:
            return fn(reader, *args)
        finally:
            reader.close()

    def _page(self, request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return self.templates.TemplateResponse(request, name, {"query": request.url.query, **context}, status)

    # -- filters --------------------------------------------------------------------------------
    def _filters(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        state = q.get("state") or None
        kind = q.get("type") or None
        before = q.get("before")
        return {"state": state if state in JOB_STATE_WHERE else None, "inbox": q.get("inbox") or None,
                "task_type": kind if kind in {t.value for t in TaskType} else None,
                "before": int(before) if before and before.isdigit() else None}  # fmt: skip

    def _jobs(self, request: Request) -> dict[str, Any]:
        f = self._filters(request)
        return {**self._read(data.jobs, f["state"], f["inbox"], f["task_type"], f["before"]), "filters": f,
                "inboxes": self.dash.inboxes}  # fmt: skip

    # -- pages ------------------------------------------------------------------------------------
    def overview(self, request: Request) -> Response:
        return self._page(request, "overview.html", summary=self._summary(), **self._jobs(request))

    def jobs_page(self, request: Request) -> Response:
        return self._page(request, "jobs.html", **self._jobs(request))

    def job_page(self, request: Request) -> Response:
        job = self._read(data.job, request.path_params["job_id"])
        if job is None:
            return self._page(request, "missing.html", 404, what=f"job #{request.path_params['job_id']}")
        return self._page(request, "job.html", job=job)

    def failed_page(self, request: Request) -> Response:
        return self._page(request, "failed.html", **self._read(data.failed, self._filters(request)["before"]))

    def daemons_page(self, request: Request) -> Response:
        return self._page(request, "daemons.html", **self._daemons())

    # -- live fragments ---------------------------------------------------------------------------
    def frag_summary(self, request: Request) -> Response:
        return self._page(request, "_summary.html", summary=self._summary())

    def frag_jobs(self, request: Request) -> Response:
        return self._page(request, "_jobs.html", **self._jobs(request))

    def frag_job(self, request: Request) -> Response:
        job = self._read(data.job, request.path_params["job_id"])
        return self._page(request, "_job.html", job=job) if job else PlainTextResponse("", 404)

    def frag_failed(self, request: Request) -> Response:
        return self._page(request, "_failed.html", **self._read(data.failed, self._filters(request)["before"]))

    def frag_daemons(self, request: Request) -> Response:
        return self._page(request, "_daemons.html", **self._daemons())

    def _summary(self) -> dict[str, Any]:
        def make() -> dict[str, Any]:
            waiting = self.dash.waiting()
            return {**self._read(data.summary, self.dash.clock.now()), "waiting": waiting.as_dict() if waiting else None}

        return self._cached("summary", self.dash.summary_ttl, make)

    def _daemons(self) -> dict[str, Any]:
        return self._read(data.daemons, self.dash.clock.now(), self.dash.lease_seconds)

    def search_page(self, request: Request) -> Response:
        return self._page(request, "search.html", **self._search(request))

    def api_search(self, request: Request) -> Response:
        found = self._search(request)
        return JSONResponse(found, 400 if found["error"] else 200)

    def _search(self, request: Request) -> dict[str, Any]:
        query = request.query_params.get("q", "").strip()
        hits, error = data.search_view(self.dash.store, query) if query else ([], None)
        return {"q": query, "hits": hits, "error": error}

    # -- files ------------------------------------------------------------------------------------
    def media(self, request: Request) -> Response:
        info = self._read(lambda r, i: r.jobs([i]).get(i), request.path_params["job_id"])
        path = data.media_path(info) if info else None
        return FileResponse(path) if path else PlainTextResponse("no original file for this job", 404)

    def output(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        found = self._read(lambda r, i: _outputs(r, i), job_id)
        path = found.get(request.path_params["kind"])
        return FileResponse(path) if path else PlainTextResponse("no such output", 404)

    def export(self, request: Request) -> Response:
        """The transcript in any format, made from the job's stored NAME.json (a GET: it changes nothing)."""
        fmt, job_id = request.path_params["fmt"], request.path_params["job_id"]
        if fmt not in FORMATS:
            return PlainTextResponse(f"unknown format (known: {', '.join(FORMATS)})", 404)
        json_path, problem = self._read(_export_source, job_id)
        if problem or json_path is None:
            return PlainTextResponse(problem or "no transcript for this job", 409 if problem else 404)
        try:
            body = outputs.render(fmt, job_exports.stored_document(json_path))
        except UserError as exc:
            return PlainTextResponse(str(exc), 404)
        name = quote(job_exports.export_name(json_path, fmt))
        return Response(body, media_type=job_exports.MEDIA_TYPES[fmt],
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})  # fmt: skip

    # -- JSON -------------------------------------------------------------------------------------
    def api_summary(self, request: Request) -> Response:
        return JSONResponse(self._summary())

    def api_jobs(self, request: Request) -> Response:
        out = self._jobs(request)
        return JSONResponse({"jobs": out["jobs"], "next_before": out["next_before"]})

    def api_job(self, request: Request) -> Response:
        job = self._read(data.job, request.path_params["job_id"])
        return JSONResponse(job) if job else JSONResponse({"error": "no such job"}, 404)

    def api_failed(self, request: Request) -> Response:
        return JSONResponse(self._read(data.failed, self._filters(request)["before"]))

    def api_daemons(self, request: Request) -> Response:
        return JSONResponse(self._daemons())

    def metrics(self, request: Request) -> Response:
        collector = QueueCollector(self.dash.open_reader, lambda: dict(self.dash.errors), self.dash.waiting)
        body = self._cached("metrics", self.dash.metrics_ttl, lambda: render(collector))
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- state changes (CSRF-checked) -------------------------------------------------------------
    async def _checked(self, request: Request) -> dict[str, str] | None:
        # The forms post urlencoded fields (the stdlib parses them); /api callers send only the header.
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), keep_blank_values=True))
        sent = request.headers.get("x-csrf-token") or form.get("csrf")
        return form if _same(sent, self.dash.csrf) else None

    def _done(self, request: Request, form: dict[str, str], result: dict[str, Any]) -> Response:
        self.forget()
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(result)
        back = form.get("next", "/")
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        return RedirectResponse(back, 303)

    async def job_action(self, request: Request) -> Response:
        form = await self._checked(request)
        if form is None:
            return PlainTextResponse("missing or wrong CSRF token", 403)
        action, job_id = request.path_params["action"], request.path_params["job_id"]
        if action not in ("retry", "cancel"):
            return PlainTextResponse("unknown action", 404)
        act = self.dash.jobs.retry_job if action == "retry" else self.dash.jobs.cancel_job
        changed = act(job_id)
        return self._done(request, form, {"job_id": job_id, "action": action, "tasks": changed})

    async def retry_all(self, request: Request) -> Response:
        form = await self._checked(request)
        if form is None:
            return PlainTextResponse("missing or wrong CSRF token", 403)
        return self._done(request, form, {"retried": self.dash.jobs.retry_failed()})

    async def control(self, request: Request) -> Response:
        form = await self._checked(request)
        if form is None:
            return PlainTextResponse("missing or wrong CSRF token", 403)
        action, scope = request.path_params["action"], form.get("scope", GLOBAL_SCOPE)
        if action not in ("pause", "resume") or scope not in {GLOBAL_SCOPE, *(t.value for t in TaskType)}:
            return PlainTextResponse("unknown action or scope", 404)
        if action == "resume" and scope == GLOBAL_SCOPE:
            self.dash.store.resume_all()
        else:
            state = ControlState.PAUSED if action == "pause" else ControlState.RUNNING
            self.dash.store.set_control(scope, state, "paused from the dashboard" if action == "pause" else None)
        return self._done(request, form, {"action": action, "scope": scope})


def _export_source(reader: Reader, job_id: int) -> tuple[Path | None, str | None]:
    """The job's NAME.json inside its outbox, and why it cannot be exported yet (None when it can)."""
    info = reader.jobs([job_id]).get(job_id)
    if info is None:
        return None, None
    tasks = reader.tasks_of_job(job_id)
    return data.outputs_of(info, tasks)[0].get("json"), job_exports.unfinished(job_id, tasks)


def _outputs(reader: Reader, job_id: int) -> dict[str, Path]:
    info = reader.jobs([job_id]).get(job_id)
    return data.outputs_of(info, reader.tasks_of_job(job_id))[0] if info else {}

