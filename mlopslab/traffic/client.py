"""The load generator's HTTP/1.1 client: keep-alive connections per endpoint on asyncio Protocols.

Responses are parsed by httptools (llhttp, Node's parser, as uvicorn uses it); requests are one write of
bytes made ahead. What the generator times is taken at the edges of the socket: `sent` right before the
request's write, `done` as soon as the parser has the whole response, inside the read that completed it.
A send on an idle connection happens synchronously, in the caller's turn of the event loop (no task to
schedule first); only a new connection waits for its connect. Each request has a deadline (`timeout`); a
connection that errs or times out is closed, never reused.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Callable
from urllib.parse import urlsplit

# done(sent, finished, status, version header or None, body): status 0 = no answer (refused, reset, timeout)
Done = Callable[[float, float, int, "str | None", bytes], None]


class _Connection(asyncio.Protocol):
    def __init__(self, pool: Pool, key: str) -> None:
        import httptools

        self.pool, self.key = pool, key
        self.parser = httptools.HttpResponseParser(self)
        self.errors = (httptools.HttpParserError,)
        self.transport: asyncio.Transport | None = None
        self.done: Done | None = None
        self.sent = 0.0
        self.version: str | None = None
        self.body: list[bytes] = []
        self.deadline: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.errors:
            self._fail()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pool._forget(self)
        self._fail()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-model-version":
            self.version = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        finished = time.monotonic()
        done, self.done = self.done, None
        if done is None:   # an answer nobody asked for: this connection is out of step
            self._close()
            return
        if self.deadline is not None:
            self.deadline.cancel()
        status, version, body = self.parser.get_status_code(), self.version, b"".join(self.body)
        if self.parser.should_keep_alive():
            self.pool._idle(self)
        else:
            self._close()
        done(self.sent, finished, status, version, body)

    # the pool's side
    def request(self, head: bytes, body: bytes, done: Done, timeout: float) -> None:
        self.done, self.version, self.body = done, None, []
        self.deadline = asyncio.get_running_loop().call_later(timeout, self._fail)
        self.sent = time.monotonic()
        self.transport.write(head + body)  # type: ignore[union-attr]

    def _fail(self) -> None:
        done, self.done = self.done, None
        self._close()
        if done is not None:
            if self.deadline is not None:
                self.deadline.cancel()
            done(self.sent, time.monotonic(), 0, None, b"")

    def _close(self) -> None:
        self.pool._forget(self)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Pool:
    """Keep-alive connections per endpoint (base url), at most `limit` open in all; a request that finds no
    idle connection opens one, or waits for one to come free when the limit is reached."""

    def __init__(self, limit: int, timeout: float, content_type: bytes = b"application/json") -> None:
        self.limit, self.timeout, self.content_type = limit, timeout, content_type
        self._idle_by_key: dict[str, list[_Connection]] = {}
        self._waiting: dict[str, deque] = {}
        self._open: set[_Connection] = set()
        self._heads: dict[tuple[str, str, int], bytes] = {}
        self._connecting: set[asyncio.Task] = set()

    def post(self, url: str, path: str, body: bytes, done: Done) -> None:
        """Sends now if an idle connection to `url` waits, else as soon as one is open."""
        head = self._head(url, path, len(body))
        idle = self._idle_by_key.get(url)
        if idle:
            idle.pop().request(head, body, done, self.timeout)
        elif len(self._open) < self.limit:
            self._connect_and_send(url, head, body, done)
        else:
            self._waiting.setdefault(url, deque()).append((head, body, done, time.monotonic()))

    def close(self) -> None:
        for connection in list(self._open):
            connection._close()

    def _connect_and_send(self, url: str, head: bytes, body: bytes, done: Done) -> None:
        connection = _Connection(self, url)
        self._open.add(connection)   # counted now: the limit holds while connects are under way
        task = asyncio.get_running_loop().create_task(self._connect(connection, url, head, body, done))
        self._connecting.add(task)   # the loop keeps only a weak reference to a task
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, connection: _Connection, url: str, head: bytes, body: bytes, done: Done) -> None:
        parts = urlsplit(url)
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: connection, parts.hostname, parts.port or 80), self.timeout)
        except (OSError, asyncio.TimeoutError):
            self._forget(connection)
            done(started, time.monotonic(), 0, None, b"")
            return
        connection.request(head, body, done, self.timeout - (time.monotonic() - started))

    def _head(self, url: str, path: str, length: int) -> bytes:
        key = (url, path, length)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 4096:
                self._heads.clear()
            host = urlsplit(url).netloc
            head = self._heads[key] = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                                       f"{self.content_type.decode()}\r\nContent-Length: {length}\r\n\r\n").encode()
        return head

    def _idle(self, connection: _Connection) -> None:
        waiting = self._waiting.get(connection.key)
        while waiting:
            head, body, done, queued = waiting.popleft()
            left = self.timeout - (time.monotonic() - queued)
            if left > 0:
                connection.request(head, body, done, left)
                return
            done(queued, time.monotonic(), 0, None, b"")
        self._idle_by_key.setdefault(connection.key, []).append(connection)

    def _forget(self, connection: _Connection) -> None:
        if connection not in self._open:
            return
        self._open.discard(connection)
        idle = self._idle_by_key.get(connection.key)
        if idle and connection in idle:
            idle.remove(connection)
        for key, waiting in self._waiting.items():   # room for one more connection: the longest waiting
            if waiting:
                head, body, done, _ = waiting.popleft()
                self._connect_and_send(key, head, body, done)
                break
