"""A benchmark probe, not part of mlopslab: on PYTHONPATH (bench_tui_ab.py --probe), in a process that holds a
Lab (a headless `mlopslab run`, or bench_tui.py's TUI child), a thread sleeps 10 ms at a time and records how
late it wakes: how long that interpreter's threads wait for a CPU and the GIL (what the lab's probes and
phase timestamps wait). Written at exit to $LAB_PROBE_DIR/<pid>.json."""

import atexit
import json
import os
import threading
import time
from pathlib import Path

try:
    _cmd = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
except OSError:
    _cmd = ""
_out = os.environ.get("LAB_PROBE_DIR")
if _out and ("-m mlopslab run " in _cmd or "--child-tui" in _cmd):
    _late: list[float] = []

    def _loop() -> None:
        while True:
            t0 = time.perf_counter()
            time.sleep(0.01)
            _late.append(time.perf_counter() - t0 - 0.01)

    threading.Thread(target=_loop, name="gil-probe", daemon=True).start()

    @atexit.register
    def _dump() -> None:
        late = sorted(_late)
        if not late:
            return

        def q(p: float) -> float:
            return round(late[min(len(late) - 1, int(p * len(late)))] * 1000, 3)

        Path(_out, f"{os.getpid()}.json").write_text(json.dumps(
            {"cmd": _cmd[:300], "tag": os.environ.get("LAB_PROBE_TAG", ""), "n": len(late), "p50_ms": q(0.5),
             "p99_ms": q(0.99), "p999_ms": q(0.999), "max_ms": round(late[-1] * 1000, 3)}))
