"""The run's traffic as the lab wires it: the load generator process, the router that tells it where each
lane's requests go, and where its records go (the traffic monitor, the drift watch, requests.jsonl)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlopslab.events import AppendLog
from mlopslab.monitor.traffic import TrafficMonitor
from mlopslab.monitor.watch import DriftWatch
from mlopslab.scenario import Scenario
from mlopslab.traffic.process import TrafficProcess
from mlopslab.traffic.router import Router


class RunTraffic:
    def __init__(self, run_dir: Path, scenario: Scenario, t0: float, monitor: TrafficMonitor, watch: DriftWatch,
                 on_storage_error: Callable[[str], None], tap: Any = None) -> None:
        """`tap` (the rollout controller, mlopslab/strategies) gets every record and arrival, and the router."""
        config = {"run": str(run_dir), "rate": scenario.rate, "t0": t0, "seed": scenario.seed,
                  "lanes": [lane.name for lane in scenario.lanes], "data": scenario.data}
        self.monitor, self.watch = monitor, watch
        self.requests = AppendLog(run_dir / "requests.jsonl")
        self.requests.on_error = on_storage_error
        self.tap = tap
        self.process = TrafficProcess(config, run_dir / "logs" / "loadgen.log", self._on_sample, self._on_result)
        self.router = Router(self.process.send)
        if tap is not None:
            tap.router = self.router

    def start(self) -> None:
        self.process.start()

    def read(self, stopped: Callable[[], bool], died: Callable[[str], None]) -> None:
        """Reads the generator's records until its output ends; calls `died` if it ended before the run did."""
        code = self.process.read()
        if not stopped():
            died(f"the load generator exited ({code}) during the run; see {self.process.log}")

    def _on_sample(self, sample: dict[str, Any]) -> None:
        self.watch.add_sample(sample)
        if self.tap is not None:
            self.tap.add_sample(sample)

    def _on_result(self, record: dict[str, Any], line: str) -> None:
        self.monitor.add_result(record)
        if self.tap is not None:
            self.tap.add_result(record)
        if not record.get("m"):  # a mirrored copy's prediction reached no user
            self.watch.add_result(record)
        self.requests.write(line)

    def close(self) -> None:
        self.requests.close()
