"""Pure: who is told when a job ends, the events they get, and the Stripe-style webhook signature.

One event per job end (its id stable across redeliveries), one NOTIFY task per target: a receiver that is down
retries on its own without repeating the others. Payloads name targets by a hash, never by their URL, because
URLs and secrets are not written to the database.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from traxd.config import Settings, Webhook
from traxd.types import PRIORITY_HIGH, Job, NewTask, TaskState, TaskType

DESKTOP = "desktop"
SIGNATURE_HEADER = "Trax-Signature"
# Deliveries retry longer than transcriptions (backoff 5 s × 4^n, capped at an hour): about four hours in all.
NOTIFY_MAX_RETRIES = 8
EXCERPT_CHARS = 280
ENDS = {TaskState.SUCCEEDED: "job.succeeded", TaskState.FAILED: "job.failed", TaskState.CANCELLED: "job.cancelled"}


@dataclass(frozen=True)
class Target:
    """One place to tell: `key` is what a task stores, `label` what is shown (no tokens), `hook` for webhooks."""

    kind: str  # webhook | apprise | desktop
    key: str
    label: str
    url: str = ""
    hook: Webhook | None = None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def safe_label(url: str) -> str:
    """A URL shown without what may be secret in it (user, password, path, query): scheme, host and port."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}" if parts.scheme else "?"


def targets(settings: Settings) -> list[Target]:
    """Every configured target, in config order: desktop and Apprise URLs from `notify`, then the webhooks."""
    out: list[Target] = []
    for entry in settings.notify:
        if entry.lower() == DESKTOP:
            out.append(Target(DESKTOP, DESKTOP, DESKTOP))
        else:
            out.append(Target("apprise", f"apprise:{_digest(entry)}", f"apprise {safe_label(entry)}", entry))
    for hook in settings.hooks:
        out.append(Target("webhook", f"webhook:{_digest(hook.url)}", f"webhook {safe_label(hook.url)}", hook.url, hook))
    return out


def find_target(settings: Settings, key: str) -> Target | None:
    """The configured target a task names, or None when it has left the configuration."""
    return next((t for t in targets(settings) if t.key == key), None)


def new_event_id() -> str:
    """A fresh event id (random: two daemons, or a restored database, never hand out the same one)."""
    return f"evt_{uuid.uuid4().hex}"


def end_events(settings: Settings | None, job: Job | None, state: TaskState, detail: dict[str, Any],
               now: float) -> list[NewTask]:  # fmt: skip
    """One NOTIFY task per target for a job that just ended (none without targets or without a job)."""
    found = targets(settings) if settings is not None else []
    if not found or job is None or job.id <= 0 or state not in ENDS:
        return []
    event = {"id": new_event_id(), "type": ENDS[state], "created": int(now), "data": _data(job, state, detail)}
    json_path = _json_path(detail)
    extra = {"json_path": json_path} if json_path else {}
    return [NewTask(TaskType.NOTIFY, {"target": t.key, "event": event, **extra}, priority=PRIORITY_HIGH,
                    max_retries=NOTIFY_MAX_RETRIES) for t in found]  # fmt: skip


def _data(job: Job, state: TaskState, detail: dict[str, Any]) -> dict[str, Any]:
    """What is known when the job ends; duration, speakers, outputs and excerpt are added at delivery."""
    data: dict[str, Any] = {"job_id": job.id, "name": job.name, "state": state.value}
    error = detail.get("error")
    if isinstance(error, str) and error:
        data["error"] = error.splitlines()[0][:300]
    return data


def _json_path(detail: dict[str, Any]) -> str | None:
    """The transcript JSON a finished job's last result names (NAME.json is what every output is made from)."""
    outputs = detail.get("outputs")
    found = detail.get("json_path") or (outputs.get("json") if isinstance(outputs, dict) else None)
    return str(found) if found else None


def delivered_data(data: dict[str, Any], json_path: Path | None, doc: dict[str, Any] | None) -> dict[str, Any]:
    """The event's data with the transcript's duration, speakers, output names and a short excerpt."""
    out = dict(data)
    if json_path is None or doc is None:
        out.setdefault("outputs", [])
        return out
    base = json_path.name.removesuffix(".json")
    names = sorted(p.name for p in json_path.parent.glob(f"{glob_escape(base)}.*") if not p.name.endswith(".tmp"))
    found = doc.get("segments")
    segments: list[Any] = found if isinstance(found, list) else []
    speakers = sorted({str(s["speaker"]) for s in segments if isinstance(s, dict) and s.get("speaker")})
    text = " ".join(str(s.get("text", "")).strip() for s in segments[:20] if isinstance(s, dict)).strip()
    excerpt = text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1].rsplit(" ", 1)[0] + "…"
    duration = doc.get("duration")
    return out | {"outputs": names, "duration": duration if isinstance(duration, (int, float)) else None,
                  "speakers": speakers, "language": doc.get("language"), "excerpt": excerpt}  # fmt: skip


def glob_escape(name: str) -> str:
    """A file name as a literal glob pattern."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The Trax-Signature header value: t=UNIX_TIME,v1=HMAC-SHA256(secret, "t.body") in hex (Stripe's scheme)."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def summary(event: dict[str, Any]) -> tuple[str, str]:
    """A title and one line of text for a desktop or Apprise notification."""
    data = event.get("data") or {}
    name, state = str(data.get("name") or f"job {data.get('job_id')}"), str(data.get("state") or "")
    title = {"succeeded": "Transcript ready", "failed": "Transcription failed",
             "cancelled": "Transcription cancelled"}.get(state, "Trax")  # fmt: skip
    line = name + (f": {data['error']}" if data.get("error") else "")
    if data.get("excerpt"):
        line += f" — {data['excerpt'][:120]}"
    return title, line


def test_event(now: float) -> dict[str, Any]:
    """The event `traxctl notify test` sends."""
    data = {"job_id": 0, "name": "test", "state": "succeeded", "outputs": [], "excerpt": "This is a test from Trax."}
    return {"id": new_event_id(), "type": "test", "created": int(now), "data": data}
