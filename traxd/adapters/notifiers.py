"""Apprise (one URL syntax for ntfy, Slack, Matrix, e-mail, …) and the desktop's own notifier, as subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys

from traxd.errors import PermanentError, RetryableError
from traxd.logging import get_logger

log = get_logger("notify")


def send_apprise(url: str, title: str, body: str) -> str:
    """Send through Apprise; a URL it does not know is permanent, a failed send retryable (it says no more)."""
    import apprise  # here: ~40 plugins load with it, which only a delivery needs

    sender = apprise.Apprise()
    if not sender.add(url):
        raise PermanentError("Apprise does not accept this notify URL (see its list of services)")
    if not sender.notify(title=title, body=body):
        raise RetryableError("Apprise could not deliver the notification")
    return "sent"


def send_desktop(title: str, body: str) -> str:
    """macOS Notification Center (osascript) or Linux notify-send; without either, skipped (a debug log)."""
    if sys.platform == "darwin":
        tool = shutil.which("osascript")
        script = f"display notification {_applescript(body)} with title {_applescript(title)}"
        command = [tool, "-e", script] if tool else None
    else:
        tool = shutil.which("notify-send")
        command = [tool, "--app-name=Trax", title, body] if tool else None
    if command is None:
        log.debug("desktop_notifier_missing", platform=sys.platform)
        return "skipped (no desktop notifier on this machine)"
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RetryableError(f"desktop notifier failed ({type(exc).__name__})") from None
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[0][:200]
        raise PermanentError(f"desktop notifier refused: {reason}")
    return "shown"


def _applescript(text: str) -> str:
    """A string literal for AppleScript."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
