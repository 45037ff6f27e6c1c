"""The load generator's HTTP/1.1 client: keep-alive connections per endpoint, read through the event loop's
`add_reader` and `recvmsg`, so that each answer carries the kernel's receive timestamp.

Responses are parsed by httptools (llhttp, Node's parser, as uvicorn uses it); requests are one `send` of
bytes made ahead. What the generator times is taken at the edges of the socket: `sent` right before the
request's `send` syscall (which returns once the kernel has the bytes), `finished` the kernel's timestamp
(SO_TIMESTAMPNS) of the packet that completed the response, i.e. when the answer reached this host, not
when this process woke up to read it (a sleeping Python process took 0.1–0.3 ms p50 to do so here, see
benchmarks/README.md). `read` is when the parser had it. The kernel stamps CLOCK_REALTIME; `Clock` maps it onto
CLOCK_MONOTONIC. A send on an idle connection happens synchronously, in the caller's turn of the event loop
(no task to schedule first); only a new connection waits for its connect. Each request has a deadline
(`timeout`); a connection that errs or times out is closed, never reused.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import deque
from typing import Callable
from urllib.parse import urlsplit

# done(sent, finished, status, version header or None, body, read): status 0 = no answer (refused, reset,
# timeout); finished = the answer's arrival (kernel timestamp), read = when this process had it
Done = Callable[[float, float, int, "str | None", bytes, float], None]

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)   # Linux (asm-generic); SCM_TIMESTAMPNS is the same
TIMESPEC = socket.CMSG_SPACE(16)                          # struct timespec: two 64-bit longs
RESAMPLE_S = 1.0


class Clock:
    """CLOCK_REALTIME (the kernel's packet timestamps) → CLOCK_MONOTONIC (the generator's clock).

    The offset is sampled as realtime read between two monotonic reads, the narrowest of 5 tries, and again
    every RESAMPLE_S while answers come in. Error: half that window (`error_ns`: p50 50 ns, p99 70 ns on the
    lab's VM, 200 samples) plus the drift between samples (the offset moved ≤ 32 ns over 1 s there): NTP
    slews both clocks alike, so only a step of the wall clock (settimeofday) moves the offset, and a step
    lands in the next sample; a stamp that would fall outside [sent, read] (such a step in between) is not
    used: the answer then counts as `read`."""

    def __init__(self) -> None:
        self.offset_ns, self.error_ns, self.sampled = 0, 0, -1e9
        self.sample()

    def sample(self) -> None:
        best = None
        for _ in range(5):
            before = time.monotonic_ns()
            wall = time.time_ns()
            after = time.monotonic_ns()
            if best is None or after - before < best[0]:
                best = (after - before, wall - (before + after) // 2)
        self.error_ns, self.offset_ns = best[0] // 2, best[1]
        self.sampled = time.monotonic()

    def monotonic(self, seconds: int, nanoseconds: int) -> float:
        if time.monotonic() - self.sampled > RESAMPLE_S:
            self.sample()
        return (seconds * 1_000_000_000 + nanoseconds - self.offset_ns) / 1e9


def _stamp(ancillary: list) -> tuple[int, int] | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
            return int.from_bytes(data[0:8], "little", signed=True), int.from_bytes(data[8:16], "little", signed=True)
    return None


def _unanswered(done: Done, since: float) -> None:
    """Status 0: refused, reset, timed out or never sent; it ends now, as it was read."""
    now = time.monotonic()
    done(since, now, 0, None, b"", now)


class _Connection:
    def __init__(self, pool: Pool, key: str) -> None:
        import httptools

        self.pool, self.key = pool, key
        self.parser = httptools.HttpResponseParser(self)
        self.errors = (httptools.HttpParserError,)
        self.sock: socket.socket | None = None
        self.loop = asyncio.get_running_loop()
        self.done: Done | None = None
        self.sent = 0.0
        self.stamp: tuple[int, int] | None = None
        self.version: str | None = None
        self.body: list[bytes] = []
        self.deadline: asyncio.TimerHandle | None = None
        self.unsent = b""

    async def connect(self, host: str, port: int) -> None:
        family, kind, proto, _, address = (await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            await self.loop.sock_connect(sock, address)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(65536, TIMESPEC)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        if not data:   # closed by the server (or reset)
            self._fail()
            return
        self.stamp = _stamp(ancillary)
        try:
            self.parser.feed_data(data)
        except self.errors:
            self._fail()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"x-model-version":
            self.version = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        read = time.monotonic()
        finished = read
        if self.stamp is not None:
            arrived = self.pool.clock.monotonic(*self.stamp)
            if self.sent <= arrived <= read:
                finished = arrived
        done, self.done = self.done, None
        if done is None:   # an answer nobody asked for: this connection is out of step
            self._close()
            return
        if self.deadline is not None:
            self.deadline.cancel()
        sent, status, version, body = self.sent, self.parser.get_status_code(), self.version, b"".join(self.body)
        if self.parser.should_keep_alive():   # may send a waiting request at once: a new `sent`
            self.pool._idle(self)
        else:
            self._close()
        done(sent, finished, status, version, body, read)

    # the pool's side
    def request(self, head: bytes, body: bytes, done: Done, timeout: float) -> None:
        self.done, self.version, self.body = done, None, []
        self.deadline = self.loop.call_later(timeout, self._fail)
        data = head + body
        self.sent = time.monotonic()
        try:
            written = self.sock.send(data)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            written = 0
        except OSError:
            self._fail()
            return
        if written < len(data):   # the kernel's buffer is full: the rest when it has room
            self.unsent = data[written:]
            self.loop.add_writer(self.sock.fileno(), self._writable)  # type: ignore[union-attr]

    def _writable(self) -> None:
        try:
            written = self.sock.send(self.unsent)  # type: ignore[union-attr]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._fail()
            return
        self.unsent = self.unsent[written:]
        if not self.unsent:
            self.loop.remove_writer(self.sock.fileno())  # type: ignore[union-attr]

    def _fail(self) -> None:
        done, self.done = self.done, None
        self._close()
        if done is not None:
            if self.deadline is not None:
                self.deadline.cancel()
            _unanswered(done, self.sent)

    def _close(self) -> None:
        self.pool._forget(self)
        sock, self.sock = self.sock, None
        if sock is not None:
            self.loop.remove_reader(sock.fileno())
            if self.unsent:
                self.loop.remove_writer(sock.fileno())
                self.unsent = b""
            sock.close()


class Pool:
    """Keep-alive connections per endpoint (base url), at most `limit` open in all; a request that finds no
    idle connection opens one, or waits for one to come free when the limit is reached."""

    def __init__(self, limit: int, timeout: float, content_type: bytes = b"application/json") -> None:
        self.limit, self.timeout, self.content_type = limit, timeout, content_type
        self.clock = Clock()
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
        for task in list(self._connecting):
            task.cancel()

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
            await asyncio.wait_for(connection.connect(parts.hostname or "127.0.0.1", parts.port or 80), self.timeout)
        except (OSError, asyncio.TimeoutError):
            self._forget(connection)
            _unanswered(done, started)
            return
        if connection not in self._open:   # the pool was closed meanwhile
            connection._close()
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
            _unanswered(done, queued)
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
