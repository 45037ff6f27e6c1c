"""HTTP/1.1 for the model server on asyncio: keep-alive, pipelining, `Expect: 100-continue`, one write per
response on a TCP_NODELAY socket.

Standard library only, because the model image carries numpy and the standard library and nothing else.
Small on purpose: a request body comes with a Content-Length (as MLflow's clients, wrk, vegeta, curl and
the lab's load generator send it); a chunked body gets 411 Length Required. One event loop serves every
connection in arrival order, so a burst of connections queues fairly instead of convoying on the GIL as
a thread per connection does (benchmarks/README.md has the measurements behind this choice).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024

# (method, path, headers with lower-case names, body) -> (status, body, content type)
App = Callable[[str, str, dict[str, str], bytes], tuple[int, bytes, str]]


@dataclass(frozen=True)
class RequestHead:
    method: str
    path: str
    headers: dict[str, str]
    length: int
    keep_alive: bool
    http10: bool


class HTTPError(ValueError):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def parse_head(raw: bytes) -> RequestHead:
    """The request line and headers (without the blank line that ends them)."""
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HTTPError(400)
    method, path, version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise HTTPError(400)
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HTTPError(411)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise HTTPError(400) from None
    if length < 0:
        raise HTTPError(400)
    if length > MAX_BODY:
        raise HTTPError(413)
    connection = headers.get("connection", "").lower()
    http10 = version == "HTTP/1.0"
    keep_alive = "keep-alive" in connection if http10 else "close" not in connection
    return RequestHead(method, path, headers, length, keep_alive, http10)


_date_cache: tuple[int, bytes] = (0, b"")


def _date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True).encode())
    return _date_cache[1]


def response(status: int, body: bytes, content_type: str, extra: bytes = b"", *,
             close: bool = False, keep_alive_header: bool = False) -> bytes:
    """The whole response as one bytes object, so it leaves in one write."""
    head = b"HTTP/1.1 %d %s\r\nServer: mlopslab-model-server\r\nDate: %s\r\nContent-Type: %s\r\n" \
           b"Content-Length: %d\r\n%s" % (status, HTTPStatus(status).phrase.encode(), _date(),
                                          content_type.encode("latin-1"), len(body), extra)
    if close:
        head += b"Connection: close\r\n"
    elif keep_alive_header:
        head += b"Connection: keep-alive\r\n"
    return head + b"\r\n" + body


class HTTPConnection(asyncio.Protocol):
    """One client connection: parses requests as bytes arrive and answers each in order."""

    def __init__(self, app: App, extra_headers: bytes = b"") -> None:
        self.app = app
        self.extra_headers = extra_headers
        self.buffer = bytearray()
        self.head: RequestHead | None = None
        self.transport: asyncio.Transport | None = None
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True

    def pause_writing(self) -> None:  # a client that does not read stops being read
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while not self.closing:
            if self.head is None:
                while self.buffer.startswith(b"\r\n"):  # tolerated between requests (RFC 9112 §2.2)
                    del self.buffer[:2]
                end = self.buffer.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buffer) > MAX_HEAD:
                        self._fail(431)
                    return
                try:
                    self.head = parse_head(bytes(self.buffer[:end]))
                except HTTPError as exc:
                    self._fail(exc.status)
                    return
                del self.buffer[:end + 4]
                if self.head.headers.get("expect", "").lower() == "100-continue" and \
                        len(self.buffer) < self.head.length and not self.head.http10:
                    self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            head = self.head
            if len(self.buffer) < head.length:
                return
            body = bytes(self.buffer[:head.length])
            del self.buffer[:head.length]
            self.head = None
            status, reply, content_type = self.app(head.method, head.path, head.headers, body)
            answer = response(status, reply, content_type, self.extra_headers,
                              close=not head.keep_alive, keep_alive_header=head.http10)
            delay = getattr(self.app, "latency", 0.0) if head.path == "/invocations" else 0.0
            if delay > 0:   # a slowed release: answer later, read nothing more meanwhile (answers stay in order)
                self.transport.pause_reading()
                asyncio.get_running_loop().call_later(delay, self._answer_late, answer, head.keep_alive)
                return
            self.transport.write(answer)
            if not head.keep_alive:
                self._close()

    def _answer_late(self, answer: bytes, keep_alive: bool) -> None:
        if self.closing or self.transport is None:
            return
        self.transport.write(answer)
        if not keep_alive:
            self._close()
            return
        self.transport.resume_reading()
        self.data_received(b"")   # requests that arrived meanwhile

    def _fail(self, status: int) -> None:
        self.transport.write(response(status, b'{"error_code": "BAD_REQUEST"}', "application/json", close=True))
        self._close()

    def close(self) -> None:
        if self.transport is not None and not self.closing:
            self._close()

    def _close(self) -> None:
        self.closing = True
        self.transport.close()  # after what is buffered has been sent
