"""Who may use a local web server of Trax (the dashboard, the served API): loopback freely, any other address only
with a token, and which Host names mean this machine."""

from __future__ import annotations

import ipaddress
import secrets

from traxd.errors import UsageError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]", "::1")
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def required_token(host: str, token: str | None, name: str) -> str | None:
    """The token to require: none on loopback unless one is given; on any other address the given one (UsageError
    naming the setting `name` when it is too short to guess) or a new one."""
    if is_loopback(host):
        return token
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UsageError(f"{name} must be at least {MIN_TOKEN_CHARS} characters when listening beyond loopback")
    return token or secrets.token_urlsafe(24)
