"""The model server speaks MLflow's scoring protocol and predicts exactly what mlflow.pyfunc predicts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from mlopslab.ml.registry import Registry
from tests.conftest import MODEL, start_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(registry: Registry) -> Iterator[str]:
    proc, url = start_server(registry, "2")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _post(url: str, body: object | str, content_type: str = "application/json") -> tuple[int, dict]:
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(url + "/invocations", data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_predictions_equal_mlflow_pyfunc_for_every_input_format(server: str, registry: Registry, stream) -> None:
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_registry_uri(registry.tracking_uri)  # this test's registry, whatever ran before

    X, _ = stream.sample(300)
    columns = stream.feature_names
    frame = pd.DataFrame(X, columns=columns)
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL}/2").predict(frame).tolist()
    rows = X.tolist()
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": columns, "data": rows}},
        "dataframe_records": {"dataframe_records": frame.to_dict(orient="records")},
        "inputs": {"inputs": rows},
        "instances": {"instances": rows},
        "columnar inputs": {"inputs": {c: X[:, i].tolist() for i, c in enumerate(columns)}},
        "reordered columns": {"dataframe_split": {"columns": columns[::-1], "data": X[:, ::-1].tolist()}},
    }
    for name, body in bodies.items():
        status, reply = _post(server, body)
        assert status == 200, (name, reply)
        assert reply["predictions"] == expected, name
    status, reply = _post(server, frame.to_csv(index=False), "text/csv")
    assert status == 200 and reply["predictions"] == expected
    assert set(expected) == {0, 1}


def test_bad_input_is_a_400_with_mlflow_error_shape(server: str) -> None:
    status, reply = _post(server, {"dataframe_split": {"columns": ["f0"], "data": [[1.0]]}})
    assert status == 400 and reply["error_code"] == "BAD_REQUEST" and "missing columns" in reply["message"]
    status, reply = _post(server, {"nope": []})
    assert status == 400
    status, reply = _post(server, "{not json")
    assert status == 400 and "invalid JSON" in reply["message"]


def test_ping_version_and_prometheus_metrics(server: str) -> None:
    with urllib.request.urlopen(server + "/health", timeout=5) as response:
        assert response.status == 200
    with urllib.request.urlopen(server + "/version", timeout=5) as response:
        assert json.loads(response.read()) == {"name": MODEL, "version": "2", "uri": f"models:/{MODEL}/2"}
    assert _post(server, {"inputs": [[0.0] * 8]})[0] == 200
    assert _post(server, {"inputs": [[0.0] * 3]})[0] == 400
    with urllib.request.urlopen(server + "/metrics", timeout=5) as response:
        text = response.read().decode()
    assert f'mlopslab_model_info{{model="{MODEL}",version="2"}} 1' in text
    count = [line for line in text.splitlines() if line.startswith("mlopslab_request_seconds_count")]
    assert count and float(count[0].split()[-1]) >= 2
    assert f'mlopslab_requests_total{{model="{MODEL}",version="2",code="200"}}' in text
    assert f'mlopslab_requests_total{{model="{MODEL}",version="2",code="400"}}' in text


def test_server_reports_not_ready_during_warmup_and_exits_with_its_parent(registry: Registry) -> None:
    port = _free_port()
    # a parent that starts the server and then dies: the server must follow it
    launcher = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, os, time;"
        f"p = subprocess.Popen([sys.executable, '-m', 'mlopslab.serving.server', '--model-dir', "
        f"{str(registry.serving_dir(MODEL, '1'))!r}, '--port', '{port}', '--warmup', '30', "
        "'--parent-pid', str(os.getpid())]); print(p.pid, flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    url = f"http://127.0.0.1:{port}/ping"
    deadline, status = time.monotonic() + 20, None
    while time.monotonic() < deadline and status is None:
        try:
            urllib.request.urlopen(url, timeout=0.5)
            status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            time.sleep(0.05)
    assert status == 503  # up, but warming up: readiness keeps traffic away
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{child}") and \
            open(f"/proc/{child}/stat").read().split(") ")[1][0] != "Z":
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{child}") or open(f"/proc/{child}/stat").read().split(") ")[1][0] == "Z"


def test_keep_alive_requests_do_not_stall_on_delayed_acks(server: str) -> None:
    """Headers and body in separate small writes make every keep-alive request wait ~40 ms for a delayed
    ACK (Nagle). One connection, 50 sequential requests: the whole answer must leave in one write."""
    import http.client

    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    body = json.dumps({"inputs": [[0.0] * 8]})
    started = time.perf_counter()
    for _ in range(50):
        connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200 and response.version == 11 and not response.will_close
        response.read()
    mean = (time.perf_counter() - started) / 50
    sock = connection.sock
    connection.close()
    assert sock is None or sock.fileno() == -1  # closed by us, so all 50 went over the one connection
    assert mean < 0.02, f"{mean * 1000:.1f} ms per keep-alive request: the Nagle / delayed-ACK stall"


def test_server_answers_each_request_in_a_single_segment(server: str) -> None:
    """Raw socket, TCP_NODELAY off on our side: each response must arrive whole in one recv."""
    host, port = server.removeprefix("http://").split(":")
    body = json.dumps({"inputs": [[0.0] * 8]}).encode()
    request = (f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        for _ in range(5):
            sock.sendall(request)
            first = sock.recv(65536)
            head, _, rest = first.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            assert head.startswith(b"HTTP/1.1 200") and len(rest) == length, first


def test_pipelined_requests_continue_and_connection_close_are_honoured(server: str) -> None:
    """The server's own HTTP/1.1: answers pipelined requests in order, sends 100 Continue before a body it
    was asked to wait for, closes after `Connection: close` and after HTTP/1.0, refuses chunked bodies."""
    host, port = server.removeprefix("http://").split(":")
    body = json.dumps({"inputs": [[0.0] * 8] * 300}).encode()

    def exchange(data: bytes, then: bytes = b"") -> bytes:
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(data)
            received = b""
            while then and b"HTTP/1.1 100 Continue\r\n\r\n" not in received:  # before the body is sent
                received += sock.recv(65536)
            sock.sendall(then)
            while chunk := sock.recv(65536):  # the server closes: every exchange below ends with a close
                received += chunk
            return received

    answers = exchange(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                       b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body),
                       then=body + b"GET /version HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answers.count(b"HTTP/1.1 200 OK") == 3 and answers.index(b'"predictions"') < answers.index(b'"uri"')
    assert answers.endswith(b'"uri": "models:/churn/2"}') and b"Connection: close" in answers
    assert exchange(b"GET /ping HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200 OK")
    assert exchange(b"POST /invocations HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").startswith(
        b"HTTP/1.1 411 Length Required")
    assert exchange(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
