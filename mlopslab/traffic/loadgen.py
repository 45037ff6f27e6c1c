"""Open-loop load generator, run as its own process: one request stream, sent to every lane.

Arrivals follow a seeded Poisson process at the scenario's rate, on the lab's clock (CLOCK_MONOTONIC is
shared by every process, so the lab passes its start instant). Each arrival is one row of the data
stream; the same row goes to every lane. Latency is measured from the *intended* send time, so a slow
server cannot slow the generator down and hide its own slowness (no coordinated omission). Requests go
only to the endpoints the lab last reported ready for a lane, round-robin, like a Service.

Connections are kept per endpoint and reused (aiohttp's pool, keep-alive), as a real client does. The
generator measures its own schedule lag: how late each request was handed to the client against its
intended time. The event loop waits on select(2), whose timeout has microsecond resolution (epoll's is a
millisecond, which alone would make the lag up to 1 ms).

Protocol (JSON lines). stdin: {"op": "routes", "lane", "backends": [[url, version, weight], ...],
"mirror": [[url, version], ...], "cohorts": [[version, share], ...]} (traffic/router.py; picks follow the
weights by smooth weighted round-robin, each request is also copied to one mirror, and a request whose
cohort key — its user, hashed to [0, 1), the same for every lane — falls below a version's share goes to
that version), or {"op": "endpoints", "lane", "endpoints":
[[url, version], ...]} (all alike), {"op": "pause"}, {"op": "resume"}, {"op": "drift", "kind", "at",
"size", "features", "ramp"}, {"op": "stop"}. stdout: {"s": i, "t", "x": [...], "y": label} once per
arrival, then {"i": i, "lane", "t", "lat" (ms), "st" (HTTP status, 0 = no answer), "v" (served version),
"p", "lag" (ms the request left after its intended time), "b" (the backend's url)} per lane, and the same
with "m": 1 for a mirrored copy (its answer reaches no user).

    python -m mlopslab.traffic.loadgen CONFIG_JSON
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import selectors
import sys
import time
from typing import Any

import numpy as np

from mlopslab.ml.data import DataSpec, DataStream, Drift

TIMEOUT = 2.0
MAX_CONNECTIONS = 800  # select(2) watches descriptors below 1024


class LoadGenerator:
    def __init__(self, config: dict[str, Any], out: Any = sys.stdout, control_fd: int | None = None) -> None:
        self.control_fd = control_fd
        self._pending = b""
        self.rate = float(config["rate"])
        self.constant = config.get("pacing", "poisson") == "constant"  # evenly spaced, for benchmarks
        self.t0 = float(config["t0"])
        self.duration = float(config.get("duration", 1e9))  # standalone runs (benchmarks); the lab sends stop
        self.lanes: list[str] = list(config["lanes"])
        self.stream = DataStream(DataSpec(**config.get("data", {})), int(config.get("seed", 0)))
        self.arrivals = np.random.default_rng([int(config.get("seed", 0)), 3])
        self.rows = np.random.default_rng([int(config.get("seed", 0)), 4])
        self.features = self.stream.feature_names
        self.routes: dict[str, Picker] = {lane: Picker([]) for lane in self.lanes}
        self.mirrors: dict[str, Picker] = {lane: Picker([]) for lane in self.lanes}
        self.cohorts: dict[str, list[tuple[float, Picker]]] = {lane: [] for lane in self.lanes}
        self.users = np.random.default_rng([int(config.get("seed", 0)), 5])
        self.paused = False
        self.stopped = False
        self._drifts = 0
        self.out = out
        self._tasks: set[asyncio.Task] = set()
        self.session: Any = None
        self._failures: tuple[type[Exception], ...] = ()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def control(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "routes":   # the lane's route table (traffic/router.py)
            rules = {str(v): float(share) for v, share in message.get("cohorts", [])}
            backends = [tuple(b) for b in message["backends"]]
            self.routes[message["lane"]] = Picker([b for b in backends if b[1] not in rules])
            self.cohorts[message["lane"]] = [(share, Picker([b for b in backends if b[1] == v]))
                                             for v, share in sorted(rules.items(), key=lambda r: r[1])]
            self.mirrors[message["lane"]] = Picker([(url, version, 1.0) for url, version in message.get("mirror", [])])
        elif op == "endpoints":   # every ready endpoint alike (a Service)
            self.routes[message["lane"]] = Picker([(url, version, 1.0) for url, version in message["endpoints"]])
        elif op == "pause":
            self.paused = True
        elif op == "resume":
            self.paused = False
        elif op == "drift":
            self.stream.add_drift(_drift(message))
            self._drifts += 1
        elif op == "stop":
            self.stopped = True

    def emit(self, record: dict[str, Any]) -> None:
        self.out.write(json.dumps(record, separators=(",", ":")) + "\n")
        self.out.flush()

    async def run(self) -> None:
        import aiohttp  # here, not at import: the lab imports this module for TIMEOUT

        if self.control_fd is not None:
            asyncio.get_running_loop().add_reader(self.control_fd, self._read_control)
        self._failures = (OSError, asyncio.TimeoutError, aiohttp.ClientError)
        connector = aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=TIMEOUT),
                                         skip_auto_headers=("User-Agent",)) as self.session:
            gc.freeze()  # what was allocated so far (imports, the data stream) is never scanned again
            await self._arrivals()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=TIMEOUT + 0.5)

    async def _arrivals(self) -> None:
        """Each arrival's row and body are made while waiting for it, so at its time only the sends remain."""
        i = 0
        t = self.now()
        while not self.stopped and t < self.duration:
            t += 1.0 / self.rate if self.constant else float(self.arrivals.exponential(1.0 / self.rate))
            drifts, draw = self._drifts, self.rows.bit_generator.state
            row, label, body = self._prepare(t)
            delay = t - self.now()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.stopped:
                break
            if self.paused:
                continue
            if drifts != self._drifts:  # a drift arrived while we waited: the same draw, carrying it
                self.rows.bit_generator.state = draw
                row, label, body = self._prepare(t)
            cohort = _cohort(int(self.users.integers(0, USERS)))
            first = i % len(self.lanes)  # lanes take turns leaving first: none is always second in line
            for lane in self.lanes[first:] + self.lanes[:first]:
                for mirrored in (False, True) if self.mirrors[lane].backends else (False,):
                    task = asyncio.create_task(self.send(i, lane, t, body, mirrored, cohort))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
            self.emit({"s": i, "t": round(t, 4), "x": row, "y": label})
            i += 1

    def _prepare(self, t: float) -> tuple[list[float], int, bytes]:
        X, y = self.stream.sample(1, t, self.rows)
        row = [round(float(v), 6) for v in X[0]]
        return row, int(y[0]), json.dumps({"dataframe_split": {"columns": self.features, "data": [row]}}).encode()

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

    def _picker(self, lane: str, mirrored: bool, cohort: float) -> Picker:
        if mirrored:
            return self.mirrors[lane]
        for share, picker in self.cohorts[lane]:
            if cohort < share:
                return picker
        return self.routes[lane]

    async def send(self, i: int, lane: str, intended: float, body: bytes, mirrored: bool = False,
                   cohort: float = 1.0) -> None:
        endpoint = self._picker(lane, mirrored, cohort).pick()
        ruled = bool(self.cohorts[lane])   # the cohort rules in force when the request was routed
        status, version, prediction, payload = 0, None, None, b""
        lag = self.now() - intended
        if endpoint is not None:
            url, version = endpoint
            try:
                async with self.session.post(url + "/invocations", data=body, headers=HEADERS) as response:
                    status = response.status
                    version = response.headers.get("X-Model-Version", version)
                    payload = await response.read()
            except self._failures:
                status = 0
        latency_ms = (self.now() - intended) * 1000.0
        if status == 200:
            try:
                prediction = json.loads(payload)["predictions"][0]
            except (ValueError, KeyError, IndexError, TypeError):
                status = 0
        record = {"i": i, "lane": lane, "t": round(intended, 4), "lat": round(latency_ms, 3), "st": status,
                  "v": version, "p": prediction, "lag": round(lag * 1000.0, 3), "b": endpoint[0] if endpoint else None}
        if ruled:
            record["c"] = round(cohort, 4)
        self.emit({**record, "m": 1} if mirrored else record)


class Picker:
    """Smooth weighted round-robin (nginx's): over any window the picks follow the weights as closely as
    whole requests can, without randomness, so a 10 % canary gets every tenth request, not ~10 %."""

    def __init__(self, backends: list[tuple[str, str, float]]) -> None:
        self.backends = [b for b in backends if b[2] > 0]
        self._current = [0.0] * len(self.backends)

    def pick(self) -> tuple[str, str] | None:
        if not self.backends:
            return None
        total = 0.0
        for k, (_, _, weight) in enumerate(self.backends):
            self._current[k] += weight
            total += weight
        best = max(range(len(self.backends)), key=self._current.__getitem__)
        self._current[best] -= total
        url, version, _ = self.backends[best]
        return url, version


HEADERS = {"Content-Type": "application/json"}
USERS = 5000   # distinct users the arrivals come from; each keeps its cohort key


def _cohort(user: int) -> float:
    """A user's sticky cohort key in [0, 1): a multiplicative hash, so neighbouring ids spread out."""
    return ((user * 2654435761) % 2**32) / 2**32


def _drift(spec: dict[str, Any]) -> Drift:
    features = spec.get("features")
    return Drift(spec["kind"], float(spec["at"]), float(spec["size"]),
                 tuple(features) if features is not None else None, float(spec.get("ramp", 0.0)))


def precise_loop() -> asyncio.AbstractEventLoop:
    """An event loop whose timers fire within microseconds, not within epoll's millisecond."""
    return asyncio.SelectorEventLoop(selectors.SelectSelector())


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    generator = LoadGenerator(json.loads(args[0]), control_fd=sys.stdin.fileno())
    try:
        with asyncio.Runner(loop_factory=precise_loop) as runner:
            runner.run(generator.run())
    except (KeyboardInterrupt, BrokenPipeError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
