"""Signed webhooks: the env repo's host notifies CI runners and pull agents of each push.

Signatures follow GitHub's scheme: header `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`.
Receivers bind 127.0.0.1, verify in constant time and reject anything unsigned or stale.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_AGE = 300.0  # seconds a delivery stays acceptable (replay window)


def new_secret() -> str:
    return secrets.token_hex(32)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, signature: str | None) -> bool:
    return bool(signature) and hmac.compare_digest(sign(secret, body), signature)


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that calls `on_push(payload)` for each correctly signed POST."""

    def __init__(self, secret: str, on_push: Callable[[dict[str, Any]], None]) -> None:
        self.secret = secret
        self.on_push = on_push
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER)):
                    receiver.rejected += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                payload = json.loads(body)
                if abs(time.time() - float(payload.get("sent_at", 0))) > MAX_AGE:
                    receiver.rejected += 1
                    self.send_response(410)
                    self.end_headers()
                    return
                self.send_response(202)
                self.end_headers()
                receiver.on_push(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="webhook", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def deliver(url: str, secret: str, payload: dict[str, Any], timeout: float = 2.0) -> int:
    """POSTs a signed payload; returns the HTTP status (0 if unreachable)."""
    body = json.dumps({**payload, "sent_at": time.time()}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", SIGNATURE_HEADER: sign(secret, body), "X-GitHub-Event": "push"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0
