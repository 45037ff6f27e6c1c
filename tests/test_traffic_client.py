"""The load generator's HTTP client: keep-alive pool, closed and silent servers, the connection limit."""

from __future__ import annotations

import asyncio
import socket
import time

from mlopslab.traffic.client import Clock, Pool


async def _server(answer: bytes | None) -> tuple[asyncio.AbstractServer, str, list[int]]:
    """A real HTTP server on 127.0.0.1 that sends `answer` to each request (None: never answers);
    the list counts connections accepted."""
    accepted = [0]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                if answer is None:
                    await asyncio.sleep(10)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", accepted


async def _post(pool: Pool, url: str, body: bytes = b'{"a": 1}') -> tuple[float, float, int, str | None, bytes]:
    """(sent, finished, status, version, body); finished (the answer's arrival) is never after it was read."""
    answered: asyncio.Future = asyncio.get_running_loop().create_future()
    pool.post(url, "/invocations", body, lambda *result: answered.set_result(result))
    *result, read = await answered
    assert result[0] <= result[1] <= read
    return tuple(result)


ANSWER = b'{"predictions": [1]}'
OK = b"HTTP/1.1 200 OK\r\nX-Model-Version: 3\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER)


def test_pool_reuses_a_kept_connection_and_reads_the_answer() -> None:
    async def scenario() -> None:
        server, url, accepted = await _server(OK)
        pool = Pool(limit=8, timeout=2.0)
        for _ in range(3):
            sent, done, status, version, body = await _post(pool, url)
            assert (status, version, body) == (200, "3", ANSWER) and done >= sent
        assert accepted[0] == 1
        pool.close()
        server.close()

    asyncio.run(scenario())


def test_pool_opens_a_new_connection_when_the_server_closed_its_own() -> None:
    async def scenario() -> None:
        server, url, accepted = await _server(OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length"))
        pool = Pool(limit=8, timeout=2.0)
        assert [(await _post(pool, url))[2] for _ in range(2)] == [200, 200]
        assert accepted[0] == 2
        server.close()

    asyncio.run(scenario())


def test_pool_answers_status_zero_for_a_refused_or_silent_endpoint() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:   # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            refused = f"http://127.0.0.1:{probe.getsockname()[1]}"
        server, silent, _ = await _server(None)
        pool = Pool(limit=8, timeout=0.3)
        assert (await _post(pool, refused))[2] == 0
        sent, done, status, _, _ = await _post(pool, silent)
        assert status == 0 and 0.2 < done - sent < 5.0
        server.close()

    asyncio.run(scenario())


def test_pool_queues_requests_beyond_its_connection_limit() -> None:
    async def scenario() -> None:
        server, url, accepted = await _server(OK)
        pool = Pool(limit=1, timeout=2.0)
        results = await asyncio.gather(*(_post(pool, url) for _ in range(4)))
        assert [r[2] for r in results] == [200] * 4 and accepted[0] == 1
        pool.close()
        server.close()

    asyncio.run(scenario())


def test_answers_end_at_the_kernels_receive_timestamp_not_at_the_read() -> None:
    """SO_TIMESTAMPNS on the pool's sockets: `finished` is the packet's arrival (before this process read it).
    The first packets after a host's first timestamping socket may come unstamped (the kernel switches its
    receive timestamps on from a workqueue, net_enable_timestamp), so answers are asked for until one is
    stamped, for at most 3 s; every answer, stamped or not, must end within [sent, read]."""
    async def scenario() -> None:
        server, url, _ = await _server(OK)
        pool = Pool(limit=8, timeout=2.0)
        stamped, deadline = 0, time.monotonic() + 3.0
        while not stamped and time.monotonic() < deadline:
            answered: asyncio.Future = asyncio.get_running_loop().create_future()
            pool.post(url, "/invocations", b"{}", lambda *result: answered.set_result(result))
            sent, finished, status, _, _, read = await answered
            assert status == 200 and sent <= finished <= read
            stamped += sent < finished < read   # a rejected (or missing) stamp makes finished == read
            await asyncio.sleep(0.01)
        assert stamped
        pool.close()
        server.close()

    asyncio.run(scenario())


def test_clock_maps_the_wall_clock_onto_the_monotonic_one() -> None:
    clock = Clock()
    assert clock.error_ns >= 0
    wall = time.time_ns()
    mapped = clock.monotonic(wall // 1_000_000_000, wall % 1_000_000_000)
    assert abs(mapped - time.monotonic()) < 1.0   # same clock; only a wall-clock step in between could break it
