"""NOTIFY: deliver one job-end event to one target (a webhook, an Apprise URL or the desktop).

The event was built when the job ended and stored with the task, so every retry sends the same id; what the
transcript says (duration, speakers, outputs, a short excerpt) is read from NAME.json when it is sent.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from traxd import notify
from traxd.adapters import notifiers, webhook
from traxd.errors import PermanentError
from traxd.handlers.registry import TaskContext
from traxd.notify import Target

TIMEOUT_SECONDS = 15.0


def handle_notify(ctx: TaskContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Send the task's event to its target; the answer becomes the task's result."""
    target = notify.find_target(ctx.settings, str(payload.get("target", "")))
    if target is None:
        raise PermanentError("this notification's target is no longer configured (notify / webhooks)")
    event = dict(payload.get("event") or {})
    path = Path(payload["json_path"]) if payload.get("json_path") else None
    event["data"] = notify.delivered_data(event.get("data") or {}, path, _read(path))
    return {"target": target.label, "event_id": event.get("id"), "answer": deliver(target, event)}


def deliver(target: Target, event: dict[str, Any], timeout: float = TIMEOUT_SECONDS) -> str:
    """Send one event to one target; a short description of the answer (errors are raised, classified)."""
    if target.kind == "webhook":
        assert target.hook is not None
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {notify.SIGNATURE_HEADER: notify.signature(target.hook.secret, int(time.time()), body)}
        answer = webhook.post(target.url, body, headers, target.hook.allow_private, timeout)
        return f"HTTP {answer.status}" + (f" {answer.text}" if answer.text else "")
    title, line = notify.summary(event)
    if target.kind == "apprise":
        return notifiers.send_apprise(target.url, title, line)
    return notifiers.send_desktop(title, line)


def _read(path: Path | None) -> dict[str, Any] | None:
    """The transcript JSON, or None when it is gone or unreadable (the event is still sent, with less in it)."""
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
