"""The Docker environment's live objects: one Deployment record per lane beside the engine, shared by every process.

Docker has no API server, so the spec lives in `<state_dir>/<lane>.spec.json` (written atomically under a
file lock, with a generation number) and its status in `<lane>.status.json`; see envs/docker.py.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from mlopslab.envs.base import DeploymentSpec, Strategy


def spec_to_dict(spec: DeploymentSpec) -> dict[str, Any]:
    return {k: v for k, v in dataclasses.asdict(spec).items() if k != "source"}


def spec_from_dict(data: dict[str, Any]) -> DeploymentSpec:
    return DeploymentSpec(**{**data, "strategy": Strategy(**data["strategy"])})


class StateStore:
    """Per-lane records shared by every process of a run: the live spec (+ generation) and its status."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chmod(self.dir, 0o777)  # the agent container runs as uid 10001
        self._cache: dict[Path, tuple[tuple[int, int, int], Any]] = {}

    @contextlib.contextmanager
    def _locked(self) -> Any:
        path = self.dir / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o666)
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, path: Path) -> Any:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a write is a new inode (os.replace)
        cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        self._cache[path] = (stamp, data)
        return data

    def _write(self, path: Path, data: Any) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.chmod(tmp, 0o666)
        os.replace(tmp, path)

    def read_spec(self, lane: str) -> tuple[int, DeploymentSpec | None]:
        data = self._read(self.dir / f"{lane}.spec.json")
        return (0, None) if data is None else (data["generation"], spec_from_dict(data["spec"]))

    def write_spec(self, spec: DeploymentSpec, by: str) -> int:
        with self._locked():
            generation = self.read_spec(spec.lane)[0] + 1
            self._write(self.dir / f"{spec.lane}.spec.json",
                        {"generation": generation, "by": by, "spec": spec_to_dict(spec)})
        return generation

    def heartbeat(self) -> None:
        path = self.dir / "heartbeat"
        path.touch(mode=0o666)
        os.utime(path)

    def heartbeat_age(self) -> float | None:
        """Seconds since the run's owner last beat (None: it never did)."""
        try:
            return time.time() - (self.dir / "heartbeat").stat().st_mtime
        except FileNotFoundError:
            return None

    def read_status(self, lane: str) -> dict[str, Any]:
        return self._read(self.dir / f"{lane}.status.json") or {}

    def write_status(self, lane: str, status: dict[str, Any]) -> None:
        self._write(self.dir / f"{lane}.status.json", status)
