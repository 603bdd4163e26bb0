"""OpenAI's transcription API as a Starlette app: every request is a durable job, the answer waits for it.

`POST /v1/audio/transcriptions`, `POST /v1/audio/translations` (multipart, OpenAI's fields and formats, `stream=true`
as server-sent events), `GET /v1/models`, `GET /v1/trax/jobs/{id}`. Errors in OpenAI's JSON shape, so the openai
SDK raises the exception types it raises against OpenAI. Beyond loopback every request needs the bearer token
(the SDK's api_key), and only this machine's names are answered on loopback (no DNS rebinding).
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from traxd.access import LOOPBACK_NAMES
from traxd.logging import get_logger
from traxd.serve import answer
from traxd.serve.ask import OPENAI_MODELS, TRANSCRIBE, TRANSLATE, ApiError, Ask, read_ask
from traxd.serve.bell import Bell
from traxd.serve.form import FormError, read_form
from traxd.serve.jobs import ENDED, Progress, Requests

log = get_logger("serve")
POLL_SECONDS = 0.2  # how often a waiting request reads its job's state (one indexed query)


def error_response(exc: ApiError) -> JSONResponse:
    """OpenAI's error body with its status."""
    return JSONResponse(exc.body(), status_code=exc.status)


class Auth:
    """The bearer token on every request when one is set (pure ASGI: a streamed answer is not buffered)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.token is not None:
            given = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                problem = ApiError(401, "Incorrect API key provided (send the server's token as the API key)",
                                   code="invalid_api_key")  # fmt: skip
                await error_response(problem)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Api:
    """The routes, on the queue's `Requests`."""

    def __init__(self, requests: Requests, limit_bytes: int, bell: Bell | None = None) -> None:
        self.requests = requests
        self.limit = limit_bytes
        self.bell = bell or Bell()  # nobody rings it without a pool in this process: a plain poll

    async def transcriptions(self, request: Request) -> Response:
        return await self._audio(request, TRANSCRIBE)

    async def translations(self, request: Request) -> Response:
        return await self._audio(request, TRANSLATE)

    async def _audio(self, request: Request, task: str) -> Response:
        try:
            ask, job_id = await self._queue(request, task)
            if ask.stream:
                return StreamingResponse(self._events(request, ask, job_id), media_type="text/event-stream",
                                         headers={"x-trax-job-id": str(job_id)})  # fmt: skip
            progress = await self._wait(request, ask, job_id)
        except ApiError as exc:
            return error_response(exc)
        if progress is None:  # the client left (nobody reads this, as whisper.cpp's server answers); the job goes on
            return Response(status_code=499)
        if progress.error is not None:
            return error_response(progress.error)
        body, media_type = answer.render(ask, progress.doc or {})
        return Response(body, media_type=media_type, headers={"x-trax-job-id": str(job_id)})

    async def _queue(self, request: Request, task: str) -> tuple[Ask, int]:
        """Read the form (the file to disk as it arrives), check it, queue the job; ApiError when any of it fails."""
        try:
            fields, upload = await read_form(request.headers.get("content-type", ""), request.stream(),
                                             self.requests.uploads, self.limit)  # fmt: skip
        except FormError as exc:
            code = "file_too_large" if exc.status == 413 else None
            raise ApiError(exc.status, str(exc), param=exc.param, code=code) from None
        try:
            ask = read_ask(task, fields)
            if upload is None or upload.size == 0:
                raise ApiError(400, "you must provide a file", param="file")
            job_id = await to_thread.run_sync(self.requests.submit, upload, ask, request.headers.get("idempotency-key"))
        except ApiError:
            if upload is not None:  # refused before it was kept: nothing of it stays behind
                upload.path.unlink(missing_ok=True)
            raise
        log.info("request_queued", job_id=job_id, task=task, format=ask.response_format, bytes=upload.size)
        return ask, job_id

    async def _wait(self, request: Request, ask: Ask, job_id: int) -> Progress | None:
        """Poll the job until it ends; None if the client disconnects first."""
        while True:
            progress = await to_thread.run_sync(self.requests.progress, job_id, ask)
            if progress.state in ENDED:
                return progress
            if await _gone(request):
                log.info("client_left", job_id=job_id)
                return None
            await self.bell.wait(POLL_SECONDS)

    async def _events(self, request: Request, ask: Ask, job_id: int) -> AsyncIterator[str]:
        """transcript.text.delta per chunk as it is decoded, then transcript.text.done (or an error event)."""
        sent: list[str] = []  # the chunks' texts streamed so far
        while True:
            progress = await to_thread.run_sync(self.requests.progress, job_id, ask, True)
            for piece in progress.pieces[len(sent) :]:
                sent.append(piece)
                yield answer.delta(piece + " ")
            if progress.state in ENDED:
                break
            if await _gone(request):
                return
            await self.bell.wait(POLL_SECONDS)
        if progress.error is not None:
            yield answer.event(progress.error.body())
            return
        doc = progress.doc or {}
        rest = _after(" ".join(str(doc.get("text") or "").split()), " ".join(" ".join(sent).split()))
        if rest:  # the chunks that finished after the last look (or all of it: the result was already there)
            yield answer.delta(rest)
        yield answer.done(doc)

    async def models(self, _request: Request) -> Response:
        names = dict.fromkeys([*OPENAI_MODELS, *self.requests.settings.serve_model_map])
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "trax"} for n in names]
        return JSONResponse({"object": "list", "data": data})

    async def job(self, request: Request) -> Response:
        job_id = int(request.path_params["job_id"])
        found = await to_thread.run_sync(self.requests.job, job_id)
        if found is None:
            return error_response(ApiError(404, f"no job {job_id}", code="job_not_found"))
        return JSONResponse(found)

    async def not_found(self, request: Request, _exc: Exception) -> Response:
        return error_response(ApiError(404, f"no route {request.method} {request.url.path}", code="unknown_url"))

    async def crashed(self, _request: Request, exc: Exception) -> Response:
        log.error("request_failed", error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}",
                  exc_info=exc)  # fmt: skip
        return error_response(ApiError(500, "the server failed on this request (its log has the details)"))


def _after(text: str, sent: str) -> str:
    """What of the final text was not streamed yet (all of it when the streamed pieces are not its start)."""
    if not sent:
        return text
    return (" " + text[len(sent) :].lstrip()) if text.startswith(sent) and len(text) > len(sent) else ""


async def _gone(request: Request) -> bool:
    return await request.is_disconnected()  # does not wait: it looks at what the connection has said so far


def create_app(requests: Requests, token: str | None, limit_bytes: int, hosts: list[str] | None = None,
               bell: Bell | None = None) -> Starlette:  # fmt: skip
    """The ASGI app. Without a token only loopback names are answered (a page elsewhere cannot rebind its DNS name
    to 127.0.0.1 and use the server); with one, `hosts` (this machine's names and addresses) or any."""
    api = Api(requests, limit_bytes, bell)
    routes = [
        Route("/v1/audio/transcriptions", api.transcriptions, methods=["POST"]),
        Route("/v1/audio/translations", api.translations, methods=["POST"]),
        Route("/v1/models", api.models), Route("/v1/trax/jobs/{job_id:int}", api.job),
    ]  # fmt: skip
    allowed = hosts if token else list(LOOPBACK_NAMES)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed or ["*"], www_redirect=False),
                  Middleware(Auth, token=token)]  # fmt: skip
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {404: api.not_found, 405: api.not_found,
                                                                               Exception: api.crashed}  # fmt: skip
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
