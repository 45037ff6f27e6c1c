"""Open-loop load generator, run as its own process: one request stream, sent to every lane.

Arrivals follow a seeded Poisson process at the scenario's rate, on the lab's clock (CLOCK_MONOTONIC is
shared by every process, so the lab passes its start instant). Each arrival is one row of the data
stream; the same row goes to every lane. Latency is measured from the *intended* send time, so a slow
server cannot slow the generator down and hide its own slowness (no coordinated omission). Requests go
only to the endpoints the lab last reported ready for a lane, round-robin, like a Service.

Protocol (JSON lines). stdin: {"op": "endpoints", "lane", "endpoints": [[url, version], ...]},
{"op": "pause"}, {"op": "resume"}, {"op": "drift", "kind", "at", "size", "features", "ramp"},
{"op": "stop"}. stdout: {"s": i, "t", "x": [...], "y": label} once per arrival, then
{"i": i, "lane", "t", "lat" (ms), "st" (HTTP status, 0 = no answer), "v" (served version), "p"} per lane.

    python -m mlopslab.traffic.loadgen CONFIG_JSON
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

import numpy as np

from mlopslab.ml.data import DataSpec, DataStream, Drift

TIMEOUT = 2.0


class LoadGenerator:
    def __init__(self, config: dict[str, Any], out: Any = sys.stdout, control_fd: int | None = None) -> None:
        self.control_fd = control_fd
        self._pending = b""
        self.rate = float(config["rate"])
        self.t0 = float(config["t0"])
        self.duration = float(config.get("duration", 1e9))
        self.lanes: list[str] = list(config["lanes"])
        self.stream = DataStream(DataSpec(**config.get("data", {})), int(config.get("seed", 0)))
        for drift in config.get("drifts", []):
            self.stream.add_drift(_drift(drift))
        self.arrivals = np.random.default_rng([int(config.get("seed", 0)), 3])
        self.rows = np.random.default_rng([int(config.get("seed", 0)), 4])
        self.features = self.stream.feature_names
        self.endpoints: dict[str, list[tuple[str, str]]] = {lane: [] for lane in self.lanes}
        self._next_endpoint: dict[str, int] = {lane: 0 for lane in self.lanes}
        self.paused = False
        self.stopped = False
        self.out = out
        self._tasks: set[asyncio.Task] = set()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "endpoints":
            self.endpoints[message["lane"]] = [tuple(e) for e in message["endpoints"]]
        elif op == "pause":
            self.paused = True
        elif op == "resume":
            self.paused = False
        elif op == "drift":
            self.stream.add_drift(_drift(message))
        elif op == "stop":
            self.stopped = True

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    async def run(self) -> None:
        if self.control_fd is not None:
            asyncio.get_running_loop().add_reader(self.control_fd, self._read_control)
        i = 0
        t = self.now()
        while not self.stopped and t < self.duration:
            t += float(self.arrivals.exponential(1.0 / self.rate))
            delay = t - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopped:
                break
            if self.paused:
                continue
            X, y = self.stream.sample(1, t, self.rows)
            row = [round(float(v), 6) for v in X[0]]
            self.emit({"s": i, "t": round(t, 4), "x": row, "y": int(y[0])})
            for lane in self.lanes:
                task = asyncio.create_task(self.send(i, lane, t, row))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            i += 1
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=TIMEOUT + 0.5)

    def _read_control(self) -> None:
        chunk = os.read(self.control_fd, 65536)
        if not chunk:  # the lab is gone: stop
            self.stopped = True
            asyncio.get_running_loop().remove_reader(self.control_fd)
            return
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        for line in lines:
            try:
                self.control(json.loads(line))
            except json.JSONDecodeError:
                pass

    def _pick(self, lane: str) -> tuple[str, str] | None:
        endpoints = self.endpoints.get(lane) or []
        if not endpoints:
            return None
        k = self._next_endpoint[lane] % len(endpoints)
        self._next_endpoint[lane] = k + 1
        return endpoints[k]

    async def send(self, i: int, lane: str, intended: float, row: list[float]) -> None:
        endpoint = self._pick(lane)
        status, version, prediction = 0, None, None
        if endpoint is not None:
            url, version = endpoint
            body = json.dumps({"dataframe_split": {"columns": self.features, "data": [row]}})
            try:
                status, headers, payload = await asyncio.wait_for(_post(url, body), TIMEOUT)
                version = headers.get("x-model-version", version)
                if status == 200:
                    prediction = json.loads(payload)["predictions"][0]
            except (OSError, asyncio.TimeoutError, ValueError, KeyError, IndexError):
                status = 0
        latency_ms = (self.now() - intended) * 1000.0
        self.emit({"i": i, "lane": lane, "t": round(intended, 4), "lat": round(latency_ms, 3), "st": status,
                   "v": version, "p": prediction})


async def _post(url: str, body: str) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        data = body.encode()
        writer.write(f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        payload = await reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, payload
    finally:
        writer.close()


def _drift(spec: dict[str, Any]) -> Drift:
    features = spec.get("features")
    return Drift(spec["kind"], float(spec["at"]), float(spec["size"]),
                 tuple(features) if features is not None else None, float(spec.get("ramp", 0.0)))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    generator = LoadGenerator(json.loads(args[0]), control_fd=sys.stdin.fileno())
    try:
        asyncio.run(generator.run())
    except (KeyboardInterrupt, BrokenPipeError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
