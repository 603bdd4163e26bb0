"""A real webhook receiver on 127.0.0.1 (http.server in a thread): checks each Trax-Signature, answers 500 to
the first `fail_first` deliveries of every event id, and records everything it was sent."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Delivery:
    """One request as received."""

    event: dict[str, Any]
    signed_right: bool
    answered: int
    headers: dict[str, str] = field(default_factory=dict)


def signed_right(secret: str, header: str, body: bytes) -> bool:
    """Check `t=…,v1=…` the way a receiver following Stripe's scheme does (written here, not imported)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


class Receiver:
    """Start with `with Receiver(secret) as r:`; `r.url` is where to post."""

    def __init__(self, secret: str = "", fail_first: int = 0, retry_after: str = "0") -> None:
        self.secret, self.fail_first, self.retry_after = secret, fail_first, retry_after
        self.ok_status = 200  # what it answers once the failures are used up
        self.deliveries: list[Delivery] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, Delivery]:
        event = json.loads(body) if body else {}
        ok = signed_right(self.secret, headers.get("trax-signature", ""), body) if self.secret else True
        with self.lock:
            seen = sum(1 for d in self.deliveries if d.event.get("id") == event.get("id"))
            status = 500 if seen < self.fail_first else self.ok_status
            delivery = Delivery(event, ok, status, headers)
            self.deliveries.append(delivery)
        return status, delivery

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                status, _ = receiver._answer(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                if status >= 500:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"no")

            def log_message(self, *args: Any) -> None:
                pass

        return Handler

    # -- what arrived ---------------------------------------------------------------------------
    def accepted(self) -> list[Delivery]:
        """Deliveries answered 200."""
        with self.lock:
            return [d for d in self.deliveries if d.answered == 200]

    def ids(self) -> set[str]:
        """Every event id seen, accepted or not."""
        with self.lock:
            return {str(d.event.get("id")) for d in self.deliveries}

    def accepted_per_id(self) -> Counter[str]:
        """How many times each event id was accepted (more than once: a duplicate the id lets a receiver drop)."""
        return Counter(str(d.event.get("id")) for d in self.accepted())
