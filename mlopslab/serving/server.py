"""The model server: serves one registered model version over MLflow's scoring protocol, plus /metrics.

One program for every environment (child process, container, pod). It imports numpy and the standard
library only, so it is ready in a fraction of a second. HTTP/1.1 with keep-alive on one asyncio event
loop (protocol.py); every response leaves in one write:

    POST /invocations   JSON with dataframe_split | dataframe_records | inputs | instances, or text/csv
    GET  /ping /health  200 once the model is loaded (and the optional warm-up has passed), else 503
    GET  /version       {"name", "version", "uri"}
    GET  /metrics       Prometheus text format

    python -m mlopslab.serving.server --model-dir DIR [--fd N | --host 127.0.0.1 --port P] [--warmup S]
        [--latency-ms MS]   (answers predictions MS later, without blocking other connections)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import socket
import sys
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from mlopslab.serving.artifact import ServingModel, load
from mlopslab.serving.protocol import HTTPConnection

JSON = "application/json"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class BadRequest(ValueError):
    pass


def parse_payload(body: bytes, content_type: str, features: tuple[str, ...]) -> np.ndarray:
    """Turns any of MLflow's scoring input formats into a float matrix ordered like the training features."""
    if content_type.startswith("text/csv"):
        rows = list(csv.reader(io.StringIO(body.decode())))
        if not rows:
            raise BadRequest("empty CSV body")
        return _from_records([dict(zip(rows[0], row)) for row in rows[1:]], features)
    try:
        payload = json.loads(body or b"null")
    except json.JSONDecodeError as exc:
        raise BadRequest(f"invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise BadRequest("expected a JSON object with one of dataframe_split, dataframe_records, inputs, instances")
    keys = [k for k in ("dataframe_split", "dataframe_records", "inputs", "instances") if k in payload]
    if len(keys) != 1:
        raise BadRequest("the JSON object must have exactly one of dataframe_split, dataframe_records, "
                         f"inputs, instances (got {sorted(payload)})")
    data = payload[keys[0]]
    if keys[0] == "dataframe_split":
        if not isinstance(data, dict) or "data" not in data:
            raise BadRequest("dataframe_split needs a 'data' field")
        columns = data.get("columns")
        if columns is None:
            return _matrix(data["data"], features)
        return _from_records([dict(zip(columns, row)) for row in data["data"]], features)
    if keys[0] == "dataframe_records":
        return _from_records(data, features)
    if isinstance(data, dict):  # columnar tensor input: {"f0": [...], ...}
        lengths = {len(v) for v in data.values() if isinstance(v, list)}
        if len(lengths) != 1:
            raise BadRequest("columnar inputs need lists of one length")
        n = lengths.pop()
        return _from_records([{k: v[i] for k, v in data.items()} for i in range(n)], features)
    if data and isinstance(data[0], dict):
        return _from_records(data, features)
    return _matrix(data, features)


def _matrix(rows: Any, features: tuple[str, ...]) -> np.ndarray:
    try:
        X = np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"inputs are not numeric: {exc}") from None
    if X.ndim == 1:
        X = X.reshape(1, -1)
    if X.ndim != 2 or X.shape[1] != len(features):
        raise BadRequest(f"expected rows of {len(features)} features, got shape {list(X.shape)}")
    return X


def _from_records(records: Any, features: tuple[str, ...]) -> np.ndarray:
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BadRequest("records must be a list of objects")
    missing = sorted({f for r in records for f in features if f not in r})
    if missing:
        raise BadRequest(f"missing columns: {missing}")
    return _matrix([[r[f] for f in features] for r in records], features)


class Metrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[int, int] = {}
        self.buckets = [0] * len(LATENCY_BUCKETS)
        self.latency_sum = 0.0
        self.latency_count = 0
        self.rows = 0
        self.connections = 0

    def observe(self, status: int, seconds: float, rows: int) -> None:
        with self.lock:
            self.requests[status] = self.requests.get(status, 0) + 1
            self.latency_sum += seconds
            self.latency_count += 1
            self.rows += rows
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.buckets[i] += 1

    def render(self, model: ServingModel, ready: bool) -> str:
        labels = f'model="{model.name}",version="{model.version}"'
        lines = ["# HELP mlopslab_model_info The model version this server serves.",
                 "# TYPE mlopslab_model_info gauge", f"mlopslab_model_info{{{labels}}} 1",
                 "# TYPE mlopslab_ready gauge", f"mlopslab_ready {int(ready)}",
                 "# HELP mlopslab_requests_total Scoring requests by HTTP status.",
                 "# TYPE mlopslab_requests_total counter"]
        with self.lock:
            for status, count in sorted(self.requests.items()):
                lines.append(f'mlopslab_requests_total{{{labels},code="{status}"}} {count}')
            lines += ["# TYPE mlopslab_rows_total counter", f"mlopslab_rows_total{{{labels}}} {self.rows}",
                      "# HELP mlopslab_connections_total TCP connections accepted (keep-alive clients reuse theirs).",
                      "# TYPE mlopslab_connections_total counter",
                      f"mlopslab_connections_total{{{labels}}} {self.connections}",
                      "# HELP mlopslab_request_seconds Scoring latency inside the server.",
                      "# TYPE mlopslab_request_seconds histogram"]
            for bound, count in zip(LATENCY_BUCKETS, self.buckets):
                lines.append(f'mlopslab_request_seconds_bucket{{{labels},le="{bound}"}} {count}')
            lines += [f'mlopslab_request_seconds_bucket{{{labels},le="+Inf"}} {self.latency_count}',
                      f"mlopslab_request_seconds_sum{{{labels}}} {self.latency_sum:.6f}",
                      f"mlopslab_request_seconds_count{{{labels}}} {self.latency_count}"]
        return "\n".join(lines) + "\n"


class ModelApp:
    """Routes one request to its answer: (method, path, headers, body) -> (status, body, content type)."""

    def __init__(self, model: ServingModel, ready_at: float, latency: float = 0.0) -> None:
        self.model = model
        self.ready_at = ready_at
        self.latency = latency   # seconds every /invocations answer is held back (a slowed release)
        self.metrics = Metrics()
        self.headers = b"X-Model-Version: %s\r\n" % model.version.encode()
        self.open: weakref.WeakSet[HTTPConnection] = weakref.WeakSet()

    @property
    def ready(self) -> bool:
        return time.monotonic() >= self.ready_at

    def connection(self) -> HTTPConnection:
        """A protocol instance for one accepted connection."""
        with self.metrics.lock:
            self.metrics.connections += 1
        connection = HTTPConnection(self, self.headers)
        self.open.add(connection)
        return connection

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        if method == "POST" and path == "/invocations":
            return self.invocations(headers, body)
        if method != "GET":
            return (404 if method == "POST" else 405), b'{"error_code": "NOT_FOUND"}', JSON
        model = self.model
        if path in ("/ping", "/health"):
            return (200, b"\n", JSON) if self.ready else (503, b'{"status": "loading"}', JSON)
        if path == "/version":
            return 200, json.dumps({"name": model.name, "version": model.version,
                                    "uri": f"models:/{model.name}/{model.version}"}).encode(), JSON
        if path == "/metrics":
            return 200, self.metrics.render(model, self.ready).encode(), "text/plain; version=0.0.4"
        return 404, b'{"error_code": "NOT_FOUND"}', JSON

    def invocations(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes, str]:
        started = time.perf_counter()
        rows = 0
        try:
            X = parse_payload(body, headers.get("content-type", "application/json"), self.model.feature_names)
            rows = len(X)
            status, reply = 200, json.dumps({"predictions": self.model.predict(X).tolist()}).encode()
        except BadRequest as exc:
            status, reply = 400, json.dumps({"error_code": "BAD_REQUEST", "message": str(exc)}).encode()
        self.metrics.observe(status, time.perf_counter() - started, rows)
        return status, reply, JSON


async def serve(sock: socket.socket, app: ModelApp, parent_pid: int | None = None) -> None:
    """Serves until SIGTERM / SIGINT, or until the process that started us is gone (so a killed lab never
    leaves servers behind)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(app.connection, sock=sock, backlog=1024)
    watch = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    await stop.wait()
    server.close()
    for connection in list(app.open):  # idle keep-alive clients too: answers already written still go out
        connection.close()
    if watch is not None:
        watch.cancel()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(0.5)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mlopslab-model-server", description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--fd", type=int, help="an inherited listening socket")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds to report not-ready after load")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is no longer our parent")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="hold every prediction's answer back this long (a release with a latency regression)")
    args = parser.parse_args(argv)

    if args.fd is not None:
        sock = socket.socket(fileno=args.fd)
    else:
        sock = socket.create_server((args.host, args.port), backlog=1024)
    model = load(args.model_dir)
    asyncio.run(serve(sock, ModelApp(model, ready_at=time.monotonic() + args.warmup,
                                       latency=args.latency_ms / 1000.0), args.parent_pid))
    return 0


if __name__ == "__main__":
    sys.exit(main())
