"""A fake OpenAI-compatible server on 127.0.0.1 for tests and benchmarks.

Serves `POST /v1/audio/transcriptions` (every response_format) and `POST /v1/chat/completions` (plain, and JSON
mode with `response_format={"type": "json_object"}` answered by `chat_json`), records every
request, and can be told to fail: `server.fail_next(status=429, headers={"retry-after": "3"})`, a delay, or a
dropped connection. `server.hold()` keeps requests open (recorded, unanswered) until `server.release()` (or one at
a time, `server.let_one()`); `server.held` says how many are open. Drive it with the real openai SDK: `OpenAI(base_url=server.base_url, api_key="sk-test")`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next matching request."""

    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    path: str | None = None  # only requests to this path consume it


@dataclass
class Recorded:
    """What a client sent."""

    path: str
    headers: dict[str, str]
    fields: dict[str, Any]
    file_name: str | None = None
    file_bytes: bytes = b""
    json_body: dict[str, Any] | None = None
    at: float = 0.0
    status: int = 200


def default_transcription(req: Recorded) -> dict[str, Any]:
    """A deterministic verbose transcript: two segments over a duration given by the `x-fake-duration` header."""
    duration = float(req.headers.get("x-fake-duration", "10"))
    text_a, text_b = "hello from the fake server.", f"this chunk has {len(req.file_bytes)} bytes."
    half = duration / 2
    segments = [
        {"id": 0, "seek": 0, "start": 0.0, "end": half, "text": " " + text_a, "tokens": [1, 2],
         "temperature": 0.0, "avg_logprob": -0.2, "compression_ratio": 1.2, "no_speech_prob": 0.01},
        {"id": 1, "seek": 0, "start": half, "end": duration, "text": " " + text_b, "tokens": [3, 4],
         "temperature": 0.0, "avg_logprob": -0.3, "compression_ratio": 1.3, "no_speech_prob": 0.02},
    ]  # fmt: skip
    return {"task": "transcribe", "language": req.fields.get("language") or "english", "duration": duration,
            "text": f"{text_a} {text_b}", "segments": segments,
            "usage": {"type": "duration", "seconds": int(duration + 0.999)}}  # fmt: skip


def default_chat(req: Recorded) -> str:
    """Echo the last user message with its first letter upper-cased (a 'clean-up' that keeps every word)."""
    messages = (req.json_body or {}).get("messages", [])
    last = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    text = str(last)
    return text[:1].upper() + text[1:]


def request_data(req: Recorded) -> dict[str, Any]:
    """The JSON object a JSON-mode request carries in its last user message (between <transcript> tags)."""
    messages = (req.json_body or {}).get("messages", [])
    last = str(next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""))
    body = last.strip().removeprefix("<transcript>").removesuffix("</transcript>").strip()
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def default_chat_json(req: Recorded) -> dict[str, Any] | str:
    """JSON mode: a 'translation' ([code] + text, same ids and order), or a summary built from the segments sent
    (its first key point at the first start, an action item at the last, a chapter each; plus one key point at an
    invented time, which Trax must drop), or the combination of part summaries."""
    data = request_data(req)
    if "target_language" in data:
        code = data["target_language"]
        return {"segments": [{"id": s["id"], "text": f"[{code}] {s['text']}"} for s in data.get("segments", [])]}
    if "parts" in data:
        parts = data["parts"]
        return {"summary": " ".join(p["summary"] for p in parts),
                **{k: [i for p in parts for i in p.get(k, [])] for k in ("key_points", "action_items", "chapters")}}
    segs = data.get("segments") or [{"start": 0.0, "text": ""}]
    first, last = segs[0], segs[-1]
    return {"summary": f"Talk starting with: {first['text'][:40]}",
            "key_points": [{"text": f"point: {first['text'][:30]}", "start": first["start"]},
                           {"text": "an invented moment", "start": 99999.5}],
            "action_items": [{"text": f"follow up on: {last['text'][:30]}", "start": last["start"]}],
            "chapters": [{"title": f"From {first['text'][:20]}", "start": first["start"]}]}  # fmt: skip


class FakeOpenAI:
    """Start with `with FakeOpenAI() as server:`; `server.base_url` ends in /v1."""

    def __init__(
        self,
        latency: float = 0.0,
        transcribe: Callable[[Recorded], dict[str, Any]] = default_transcription,
        chat: Callable[[Recorded], str] = default_chat,
        api_key: str | None = None,
        chat_json: Callable[[Recorded], dict[str, Any] | str] = default_chat_json,
    ) -> None:
        self.latency = latency
        self.transcribe = transcribe
        self.chat = chat
        self.chat_json = chat_json
        self.api_key = api_key
        self.requests: list[Recorded] = []
        self.faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._open = threading.Event()  # cleared by hold(): requests wait until release()
        self._open.set()
        self._passes = threading.Semaphore(0)  # let_one(): one held request goes on
        self._held = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        """The URL to give the openai SDK."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, status: int = 500, times: int = 1, **kwargs: Any) -> None:
        """Make the next `times` requests fail with this status (or delay / drop)."""
        with self._lock:
            for _ in range(times):
                self.faults.append(Fault(status=status, **kwargs))

    def hold(self) -> None:
        """Keep requests that arrive from now on open (recorded, not answered) until release() or let_one()."""
        self._open.clear()

    def let_one(self) -> None:
        """Answer one held request (the next one to arrive, if none is held now); keep holding the rest."""
        self._passes.release()

    def release(self) -> None:
        """Answer every held request, and the next ones at once."""
        self._open.set()

    @property
    def held(self) -> int:
        """Transcription requests open right now because of hold()."""
        with self._lock:
            return self._held

    def _wait_if_held(self) -> None:
        if self._open.is_set():
            return
        with self._lock:
            self._held += 1
        try:
            while not self._open.wait(0.02) and not self._passes.acquire(blocking=False):
                pass
        finally:
            with self._lock:
                self._held -= 1

    def calls(self, path_suffix: str = "") -> list[Recorded]:
        """Requests recorded so far (optionally only those whose path ends with the suffix)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    def _take_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in list(self.faults):
                if fault.path is None or path.endswith(fault.path):
                    self.faults.remove(fault)
                    return fault
        return None

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # TCP_NODELAY, as real API servers set it: http.server writes the headers and the body in two sends,
            # and with Nagle on, the body waited for the client's delayed ACK of the headers (~40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:  # keep test output clean
                return

            def do_POST(self) -> None:
                fake._serve(self)

        return Handler

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        body = h.rfile.read(length) if length else b""
        rec = Recorded(h.path, {k.lower(): v for k, v in h.headers.items()}, {}, at=time.time())
        if "multipart/form-data" in (h.headers.get("content-type") or ""):
            _parse_multipart(h.headers.get("content-type", ""), body, rec)
        elif body:
            try:
                rec.json_body = json.loads(body)
            except ValueError:
                rec.json_body = None
        fault = self._take_fault(h.path)
        if self.latency:
            time.sleep(self.latency)
        if fault_handled(h, fault, rec, self._record):
            return
        if self.api_key is not None and h.headers.get("authorization") != f"Bearer {self.api_key}":
            rec.status = 401
            self._record(rec)
            _send_json(h, 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                          "code": "invalid_api_key"}})  # fmt: skip
            return
        self._record(rec)
        self._wait_if_held()  # a request in flight while the test breaks something else (the database)
        if h.path.endswith("/audio/transcriptions"):
            self._send_transcription(h, rec)
        elif h.path.endswith("/chat/completions"):
            self._send_chat(h, rec)
        else:
            _send_json(h, 404, {"error": {"message": f"no route {h.path}", "type": "invalid_request_error"}})

    def _send_transcription(self, h: BaseHTTPRequestHandler, rec: Recorded) -> None:
        verbose = self.transcribe(rec)
        fmt = rec.fields.get("response_format") or "json"
        if fmt == "verbose_json":
            _send_json(h, 200, _with_granularities(verbose, rec))
        elif fmt == "diarized_json":
            _send_json(h, 200, _diarized(verbose))
        elif fmt == "json":
            _send_json(h, 200, _json_transcription(verbose, rec))
        elif fmt == "text":
            _send_text(h, verbose["text"], "text/plain")
        elif fmt in ("srt", "vtt"):
            _send_text(h, _subtitles(verbose["segments"], fmt), "text/plain")
        else:
            _send_json(h, 400, {"error": {"message": f"bad response_format {fmt}", "type": "invalid_request_error"}})

    def _send_chat(self, h: BaseHTTPRequestHandler, rec: Recorded) -> None:
        if ((rec.json_body or {}).get("response_format") or {}).get("type") == "json_object":
            answer = self.chat_json(rec)
            content = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
        else:
            content = self.chat(rec)
        model = (rec.json_body or {}).get("model", "fake")
        _send_json(h, 200, {
            "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        })  # fmt: skip


def _with_granularities(verbose: dict[str, Any], rec: Recorded) -> dict[str, Any]:
    """verbose_json as OpenAI sends it: top-level `words` only when `timestamp_granularities[]=word` was asked."""
    out = {k: v for k, v in verbose.items() if k != "words"}
    if "word" in rec.fields.get("timestamp_granularities", []):
        out["words"] = verbose.get("words") or [w for s in verbose.get("segments", []) for w in _spread(s)]
    return out


def _spread(seg: dict[str, Any]) -> list[dict[str, Any]]:
    """A segment's words, its time shared out evenly (OpenAI sends no word probabilities)."""
    words = seg["text"].split()
    step = (seg["end"] - seg["start"]) / max(1, len(words))
    return [{"word": w, "start": round(seg["start"] + i * step, 3), "end": round(seg["start"] + (i + 1) * step, 3)}
            for i, w in enumerate(words)]  # fmt: skip


def _json_transcription(verbose: dict[str, Any], rec: Recorded) -> dict[str, Any]:
    """The `json` format: text and usage, plus token logprobs when asked (`include[]=logprobs`, gpt-4o models)
    and detected languages for models that take `languages[]` hints (gpt-transcribe)."""
    out: dict[str, Any] = {"text": verbose["text"], "usage": verbose.get("usage")}
    if "logprobs" in rec.fields.get("include", []):
        out["logprobs"] = [{"token": w, "bytes": list(w.encode()), "logprob": s.get("avg_logprob", -0.1)}
                           for s in verbose.get("segments", []) for w in s["text"].split()]  # fmt: skip
    if "languages" in rec.fields:
        out["languages"] = [{"code": code} for code in rec.fields["languages"]]
    return out


def _diarized(verbose: dict[str, Any]) -> dict[str, Any]:
    """The `diarized_json` format (gpt-4o-transcribe-diarize): segments with a `speaker` (A, B … alternating unless
    the transcript gives its own), no logprobs, no word timings."""
    segments = [{"type": "transcript.text.segment", "id": f"seg_{i}", "start": s["start"], "end": s["end"],
                 "text": s["text"].strip(), "speaker": s.get("speaker") or "AB"[i % 2]}
                for i, s in enumerate(verbose.get("segments", []))]  # fmt: skip
    return {"task": "transcribe", "duration": verbose.get("duration", 0.0), "text": verbose["text"],
            "segments": segments, "usage": verbose.get("usage")}


def fault_handled(
    h: BaseHTTPRequestHandler, fault: Fault | None, rec: Recorded, record: Callable[[Recorded], None]
) -> bool:
    """Apply a scripted fault; True when the response was sent (or the connection dropped).

    The request is recorded before the client can see the response, so `calls()` never lags behind the client.
    """
    if fault is None:
        return False
    if fault.delay:
        time.sleep(fault.delay)
    if fault.drop:
        rec.status = 0
        record(rec)
        h.close_connection = True
        h.connection.close()
        return True
    if fault.status < 400 and fault.body is None:
        return False  # a pure delay: the caller records and serves normally
    rec.status = fault.status
    record(rec)
    body = fault.body or {"error": {"message": f"injected {fault.status}", "type": "server_error"}}
    _send_json(h, fault.status, body, fault.headers)
    return True


def _parse_multipart(content_type: str, body: bytes, rec: Recorded) -> None:
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename:
            rec.file_name, rec.file_bytes = filename, payload
        elif name:
            value = payload.decode("utf-8", "replace")
            if name.endswith("[]"):
                rec.fields.setdefault(name[:-2], []).append(value)
            else:
                rec.fields[name] = value


def _send_json(h: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
    _send_text(h, json.dumps(data), "application/json", status, headers)


def _send_text(
    h: BaseHTTPRequestHandler, text: str, ctype: str, status: int = 200, headers: dict[str, str] | None = None
) -> None:
    raw = text.encode()
    h.send_response(status)
    h.send_header("content-type", ctype)
    h.send_header("content-length", str(len(raw)))
    h.send_header("x-request-id", f"req_{time.monotonic_ns()}")
    for key, value in (headers or {}).items():
        h.send_header(key, value)
    h.end_headers()
    h.wfile.write(raw)


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def _subtitles(segments: list[dict[str, Any]], fmt: str) -> str:
    sep = "," if fmt == "srt" else "."
    lines = [] if fmt == "srt" else ["WEBVTT", ""]
    for i, seg in enumerate(segments, 1):
        if fmt == "srt":
            lines.append(str(i))
        lines += [f"{_stamp(seg['start'], sep)} --> {_stamp(seg['end'], sep)}", seg["text"].strip(), ""]
    return "\n".join(lines)
