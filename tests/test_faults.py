"""Faults a lab run must survive and show as what they are: hostile webhooks, an env repo that goes away,
a locked MLflow store, versions that crash or never become ready, a full disk, overload, SIGKILL.

Each test injects the fault into real parts (git, sqlite, processes, sockets, a tmpfs) and asserts what the
user sees — the event, the summary row, the exit code — and that nothing recorded is lost.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from mlopslab.gitops import webhook


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _signed(secret: str, payload: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload).encode()
    return body, {webhook.SIGNATURE_HEADER: webhook.sign(secret, body), "Content-Type": "application/json"}


def test_webhook_rejects_forged_replayed_oversized_and_slow_requests_without_blocking_the_next_delivery() -> None:
    got: list[dict] = []
    secret = webhook.new_secret()
    receiver = webhook.WebhookReceiver(secret, got.append, deadline=1.0)
    host, port = receiver.server.server_address[:2]
    lorises: list[socket.socket] = []
    try:
        # slow lorises: a header trickled byte by byte, and a body that never comes
        for _ in range(8):
            loris = socket.create_connection((host, port), timeout=10)
            loris.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            lorises.append(loris)
        stalled = socket.create_connection((host, port), timeout=10)
        stalled.sendall(b"POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n{\"after\":")
        lorises.append(stalled)
        trickling = threading.Event()

        def trickle() -> None:
            while not trickling.wait(0.2):
                for loris in lorises[:8]:
                    try:
                        loris.send(b"a")
                    except OSError:
                        pass

        threading.Thread(target=trickle, daemon=True).start()

        body, headers = _signed("not-the-secret", {"after": "forged", "sent_at": time.time(), "delivery": "f1"})
        assert _post(receiver.url, body, headers) == 401
        oversized = b"x" * (webhook.MAX_BODY + 1)
        assert _post(receiver.url, oversized, {webhook.SIGNATURE_HEADER: webhook.sign(secret, oversized)}) == 413
        assert _post(receiver.url, b"not json", {webhook.SIGNATURE_HEADER: webhook.sign(secret, b"not json")}) == 400
        body, headers = _signed(secret, {"after": "first", "sent_at": time.time(), "delivery": "d1"})
        assert _post(receiver.url, body, headers) == 202
        assert _post(receiver.url, body, headers) == 409  # the same signed delivery, captured and replayed

        started = time.monotonic()
        assert webhook.deliver(receiver.url, secret, {"after": "next"}) == 202  # while the lorises still hang on
        assert time.monotonic() - started < 1.0
        assert [p["after"] for p in got] == ["first", "next"]
        assert receiver.rejected == 4

        # every slow client is cut off by the deadline (1 s here), well before it finishes
        deadline = time.monotonic() + 6.0
        for loris in lorises:
            loris.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while loris.recv(1024):  # the server's answer (if any), then end of stream
                    pass
            except ConnectionResetError:
                pass
        assert time.monotonic() < deadline
        trickling.set()
        assert receiver.cut_off == len(lorises) and receiver.rejected == 4
    finally:
        for loris in lorises:
            loris.close()
        receiver.close()
