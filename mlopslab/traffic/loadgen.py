"""Open-loop load generator, run as its own process: one request stream, sent to every lane.

Arrivals follow a seeded Poisson process at the scenario's rate, on the lab's clock (CLOCK_MONOTONIC is
shared by every process, so the lab passes its start instant). Each arrival is one row of the data
stream; the same row goes to every lane, lane k's copy k × min(1/(lanes × rate), 20 ms) after the arrival:
every lane sees the same process, shifted, and the lanes' requests do not meet at one instant on two CPUs.
Latency is measured from the *intended* send time, so a slow server cannot slow the generator down and
hide its own slowness (no coordinated omission). Requests go only to the endpoints the lab last reported
ready for a lane, round-robin, like a Service.

Connections are kept per endpoint and reused (traffic/client.py: keep-alive, responses parsed by
httptools), as a real client does; a request is written on an idle connection in its own turn of the event
loop. The generator measures its own schedule lag: how late each request's `send` was against its intended
time; latency ends at the kernel's receive timestamp of the packet that completed the response (not when
this process woke up to read it). The event loop waits on select(2), whose timeout has microsecond
resolution (epoll's is a millisecond, which alone would make the lag up to 1 ms). A sleeping process wakes
late (0.1-1 ms on this virtual machine, more on a busy one), so the generator sleeps only until a little
before each send and polls the rest of the way: how much before is learnt from its own wake-ups (the 99th
percentile of how late its recent sleeps woke, see Spin), unless `spin_ms` fixes it.

Protocol (JSON lines). stdin: {"op": "routes", "lane", "backends": [[url, version, weight], ...],
"mirror": [[url, version], ...], "cohorts": [[version, share], ...]} (traffic/router.py; picks follow the
weights by smooth weighted round-robin, each request is also copied to one mirror, and a request whose
cohort key — its user, hashed to [0, 1), the same for every lane — falls below a version's share goes to
that version), or {"op": "endpoints", "lane", "endpoints":
[[url, version], ...]} (all alike), {"op": "pause"}, {"op": "resume"}, {"op": "drift", "kind", "at",
"size", "features", "ramp"}, {"op": "stop"}. stdout: {"s": i, "t", "x": [...], "y": label} once per
arrival, then {"i": i, "lane", "t", "lat" (ms), "st" (HTTP status, 0 = no answer), "v" (served version),
"p", "lag" (ms the request left after its intended time), "b" (the backend's url), "w" (ms from the answer's
arrival, the kernel's timestamp where "lat" ends, to this process reading it)} per lane, and the same
with "m": 1 for a mirrored copy (its answer reaches no user).

    python -m mlopslab.traffic.loadgen CONFIG_JSON
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import json
import os
import select
import selectors
import sys
import time
from collections import deque
from typing import Any

import numpy as np

from mlopslab.ml.data import DataSpec, DataStream, Drift

TIMEOUT = 2.0
MAX_CONNECTIONS = 800  # select(2) watches descriptors below 1024
POLL_MS = 0.0
STAGGER = 0.02  # s: a lane's answer (p99 a few ms here) is in before the next lane's copy leaves, and the
                # copies of one arrival stay within one moment of the run's clock at any rate


class LoadGenerator:
    def __init__(self, config: dict[str, Any], out: Any = sys.stdout, control_fd: int | None = None) -> None:
        self.control_fd = control_fd
        self._pending = b""
        self.rate = float(config["rate"])
        self.constant = config.get("pacing", "poisson") == "constant"  # evenly spaced, for benchmarks
        self.t0 = float(config["t0"])
        fixed = config.get("spin_ms")  # None: learnt (Spin); a number fixes it (benchmark arms, 0: never spin)
        self.lanes: list[str] = list(config["lanes"])
        # lane k's copy of an arrival leaves k × stagger after it: spread over the mean interval, at most STAGGER
        self.stagger = min(1.0 / (self.rate * len(self.lanes)), STAGGER)
        self.spin = Spin(None if fixed is None else float(fixed) / 1000.0, self.stagger)
        self.poll = float(config.get("poll_ms", POLL_MS)) / 1000.0
        self._last_send = -1e9
        self.duration = float(config.get("duration", 1e9))  # standalone runs (benchmarks); the lab sends stop
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
        self._in_flight = 0
        self.pool: Any = None

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
        from mlopslab.traffic.client import Pool  # here, not at import: the lab imports this module for TIMEOUT

        if self.control_fd is not None:
            asyncio.get_running_loop().add_reader(self.control_fd, self._read_control)
            # what was written before the schedule starts (the first routes) holds for its first request too
            while not self.stopped and select.select([self.control_fd], [], [], 0)[0]:
                self._read_control()
        self.pool = Pool(MAX_CONNECTIONS, TIMEOUT)
        gc.freeze()  # what was allocated so far (imports, the data stream) is never scanned again
        try:
            await self._arrivals()
            deadline = time.monotonic() + TIMEOUT + 0.5
            while self._in_flight and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        finally:
            self.pool.close()

    async def _arrivals(self) -> None:
        """One stream of arrivals, each sent to every lane. Lane k's copy leaves k × `stagger` after the arrival
        (a fixed offset, so every lane sees the same process, shifted): the lanes' requests neither queue
        behind each other's sends nor meet on the CPUs, as they would if all left at one instant. Each
        arrival's row and body are made while waiting for it, so at its time only the sends remain."""
        i = 0
        t = max(self.now(), 0.0)  # the schedule starts at the clock's zero, never before (a t0 ahead waits)
        later: list[tuple[float, int, int, bytes, float]] = []  # copies still due: (when, i, lane index, body, cohort)
        while not self.stopped and t < self.duration:
            t += 1.0 / self.rate if self.constant else float(self.arrivals.exponential(1.0 / self.rate))
            drifts, draw = self._drifts, self.rows.bit_generator.state
            row, label, body = self._prepare(t)
            cohort = _cohort(int(self.users.integers(0, USERS)))  # drawn ahead too: a cold draw took 50 µs
            while later and later[0][0] < t:
                await self._copy(*heapq.heappop(later))
            await self._wait(t)
            if self.stopped:
                break
            if self.paused:
                continue
            if drifts != self._drifts:  # a drift arrived while we waited: the same draw, carrying it
                self.rows.bit_generator.state = draw
                row, label, body = self._prepare(t)
            self._send_lane(i, 0, t, body, cohort)
            self.emit({"s": i, "t": round(t, 4), "x": row, "y": label})
            for k in range(1, len(self.lanes)):
                heapq.heappush(later, (t + k * self.stagger, i, k, body, cohort))
            i += 1
        while later:   # an arrival that has begun goes to every lane, even after a stop: (lanes - 1) × stagger
            await self._copy(*heapq.heappop(later))

    async def _copy(self, when: float, i: int, k: int, body: bytes, cohort: float) -> None:
        await self._wait(when)
        if not self.paused:
            self._send_lane(i, k, when, body, cohort)

    def _send_lane(self, i: int, k: int, intended: float, body: bytes, cohort: float) -> None:
        lane = self.lanes[k]
        for mirrored in (False, True) if self.mirrors[lane].backends else (False,):
            self.send(i, lane, intended, body, mirrored, cohort)
        self._last_send = self.now()

    async def _wait(self, t: float) -> None:
        """Until arrival time t. Awake (polling the sockets, not sleeping: a sleeper wakes late) in the last
        `spin.window` before it, and for `poll_ms` after a send while answers are due; asleep otherwise (an
        answer still wakes the loop). Each sleep's own lateness teaches the spin how early to wake."""
        while (now := self.now()) < t:
            window = self.spin.window
            if t - now <= window or (self._in_flight and now - self._last_send < self.poll):
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(t - window - now)
                self.spin.woke(self.now() - (t - window))

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

    def send(self, i: int, lane: str, intended: float, body: bytes, mirrored: bool = False,
             cohort: float = 1.0) -> None:
        """Hands the request to the pool (written now on an idle connection); its record goes out when the
        answer is in. Lag and latency are taken at the socket: right before the write, right after the read."""
        endpoint = self._picker(lane, mirrored, cohort).pick()
        record = {"i": i, "lane": lane, "t": round(intended, 4), "lat": 0.0, "st": 0, "v": None, "p": None,
                  "lag": 0.0, "b": endpoint[0] if endpoint else None}
        if self.cohorts[lane]:   # the cohort rules in force when the request was routed
            record["c"] = round(cohort, 4)
        if mirrored:
            record["m"] = 1
        if endpoint is None:
            now = self.now()
            record |= {"lat": round((now - intended) * 1000.0, 3), "lag": round((now - intended) * 1000.0, 3)}
            self.emit(record)
            return
        url, record["v"] = endpoint

        def done(sent: float, finished: float, status: int, version: str | None, payload: bytes, read: float) -> None:
            self._in_flight -= 1
            record["lag"] = round((sent - self.t0 - intended) * 1000.0, 3)
            record["lat"] = round((finished - self.t0 - intended) * 1000.0, 3)
            record["w"] = round((read - finished) * 1000.0, 3)
            if version is not None:
                record["v"] = version
            if status == 200:
                try:
                    record["p"] = json.loads(payload)["predictions"][0]
                except (ValueError, KeyError, IndexError, TypeError):
                    status = 0
            record["st"] = status
            self.emit(record)

        self._in_flight += 1
        self.pool.post(url, "/invocations", body, done)


class Spin:
    """How long before a send the generator stops sleeping and polls instead: the 99th percentile of how late
    its last SAMPLES sleeps woke, plus MARGIN, at most MAX and at most a quarter of the lanes' stagger (never
    more than the mean interval between sends). Learnt, because how late a sleeper wakes is the machine's
    (timer slack, a virtual CPU's wake-up, other load) and changes during a run. It costs a busy CPU for
    `window` per send, so never more than a quarter of a core: at 50 sends/s and a 1 ms window, 5 % of one."""

    SAMPLES = 200
    MARGIN = 0.05e-3
    MAX = 3e-3       # beyond this the machine is too busy for spinning to help; the lag shows it instead
    START = 0.5e-3   # until SAMPLES/10 sleeps have been seen

    def __init__(self, fixed: float | None = None, interval: float = 1.0) -> None:
        self.fixed = fixed
        self.limit = min(self.MAX, interval / 4)
        self.window = fixed if fixed is not None else min(self.START, self.limit)
        self._late: deque[float] = deque(maxlen=self.SAMPLES)
        self._woken = 0

    def woke(self, late: float) -> None:
        if self.fixed is not None:
            return
        self._late.append(late)
        self._woken += 1
        if self._woken % 10 == 0 and len(self._late) >= self.SAMPLES // 10:  # every tenth sleep: cheap enough
            ordered = sorted(self._late)
            self.window = min(ordered[int(0.99 * (len(ordered) - 1))] + self.MARGIN, self.limit)


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


def uv_loop() -> asyncio.AbstractEventLoop:
    """uvloop (libuv): an arm of bench_loadgen.py (`{"loop": "uvloop"}`), not a dependency of the lab."""
    import uvloop

    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    config = json.loads(args[0])
    generator = LoadGenerator(config, control_fd=sys.stdin.fileno())
    try:
        with asyncio.Runner(loop_factory=uv_loop if config.get("loop") == "uvloop" else precise_loop) as runner:
            runner.run(generator.run())
    except (KeyboardInterrupt, BrokenPipeError):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
