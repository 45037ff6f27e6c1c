"""Signed webhooks: the env repo's host notifies CI runners and pull agents of each push.

Signatures follow GitHub's scheme: header `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
Receivers bind 127.0.0.1, verify in constant time and reject what is unsigned (401), stale (410), replayed
(409: each body carries a delivery id, signed with it), oversized (413, unread) or malformed (400). A client
that sends its request slower than `REQUEST_DEADLINE` (a slow loris) is cut off; every connection has a
thread of its own, so none of them holds up the delivery that follows.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_AGE = 300.0  # seconds a delivery stays acceptable; within it, a delivery id is accepted once
MAX_BODY = 64 * 1024  # bytes; a push payload is a few hundred
REQUEST_DEADLINE = 2.0  # seconds a client has to send its whole request


def new_secret() -> str:
    return secrets.token_hex(32)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client cut off or gone mid-request is not the receiver's problem: no traceback on stderr."""


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that calls `on_push(payload)` once for each correctly signed delivery."""

    def __init__(self, secret: str, on_push: Callable[[dict[str, Any]], None], *,
                 deadline: float = REQUEST_DEADLINE) -> None:
        self.secret = secret
        self.on_push = on_push
        self.rejected = 0
        self.cut_off = 0  # connections closed for sending too slowly
        self._seen: dict[str, float] = {}  # delivery id -> sent_at, for MAX_AGE
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 3 * deadline  # a backstop: the cut-off below ends a slow request first

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()  # a request trickled in under the per-read timeout is cut off as a whole
                self.cut = False
                self._cutoff = threading.Timer(deadline, self._cut_off)
                self._cutoff.daemon = True
                self._cutoff.start()

            def finish(self) -> None:
                self._cutoff.cancel()
                super().finish()

            def _cut_off(self) -> None:
                self.cut = True
                with receiver._lock:
                    receiver.cut_off += 1
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def do_POST(self) -> None:
                status = receiver.receive(self.headers, self.rfile, lambda: self.cut)
                self._cutoff.cancel()
                if status == 0:
                    self.close_connection = True
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="webhook", daemon=True)
        self._thread.start()

    def receive(self, headers: Any, body_stream: Any, cut: Callable[[], bool] = lambda: False) -> int:
        """Checks one request and hands an accepted payload on; returns the HTTP status to answer (0: the
        request was cut off at the deadline, it gets no answer)."""
        status, payload = self._check(headers, body_stream)
        if cut():
            return 0
        if status != 202:
            with self._lock:
                self.rejected += 1
            return status
        self.on_push(payload)
        return status

    def _check(self, headers: Any, body_stream: Any) -> tuple[int, dict[str, Any]]:
        try:
            length = int(headers.get("Content-Length") or "")
        except ValueError:
            return 411, {}
        if length < 0:
            return 400, {}
        if length > MAX_BODY:
            return 413, {}  # never read: the body could be anything
        body = body_stream.read(length)
        if len(body) != length:
            return 400, {}
        if not verify(self.secret, body, headers.get(SIGNATURE_HEADER)):
            return 401, {}
        try:
            payload = json.loads(body)
            sent_at = float(payload.get("sent_at", 0))
        except (ValueError, TypeError, AttributeError):
            return 400, {}
        now = time.time()
        if abs(now - sent_at) > MAX_AGE:
            return 410, {}
        delivery = payload.get("delivery")
        if not isinstance(delivery, str) or not delivery:
            return 400, {}
        with self._lock:
            self._seen = {d: t for d, t in self._seen.items() if abs(now - t) <= MAX_AGE}
            if delivery in self._seen:
                return 409, {}  # a replay of a delivery already accepted
            self._seen[delivery] = sent_at
        return 202, payload

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def deliver(url: str, secret: str, payload: dict[str, Any], timeout: float = 2.0) -> int:
    """POSTs a signed payload; returns the HTTP status (0 if unreachable)."""
    delivery = uuid.uuid4().hex
    body = json.dumps({**payload, "sent_at": time.time(), "delivery": delivery}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body), "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
