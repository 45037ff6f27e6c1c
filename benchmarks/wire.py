"""The wire as a reference: latencies taken from a packet capture on the loopback device, independent of
any client. A request's wire latency runs from the capture's timestamp of its first packet (client →
server, starting with the request line) to that of the last packet the server sent before the next
request on the same connection (keep-alive with one request in flight per connection, as both load
generators here use them). Timestamps are the kernel's, taken as each packet crosses `lo`.

    with Wire([port, ...], work) as wire:
        ... run a generator against those ports ...
    wire.stats(warmup)  # {"wire_requests", "wire_p50_ms", "wire_p99_ms"}

Needs tcpdump (Debian's `tcpdump`) and the right to capture (root, or CAP_NET_RAW).
"""

from __future__ import annotations

import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import numpy as np

NANO_MAGIC = 0xA1B23C4D   # pcap with nanosecond timestamps, written little-endian by tcpdump here
ETHERNET = 1              # lo's link type
FLUSH_S = 1.5             # tcpdump hands over its capture buffer in blocks, retired within a second


class Wire:
    def __init__(self, ports: list[int], work: Path, name: str = "wire") -> None:
        self.ports = set(ports)
        self.path = work / f"{name}.pcap"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Wire:
        tcpdump = shutil.which("tcpdump")
        if tcpdump is None:
            raise SystemExit("the wire reference needs tcpdump: apt-get install tcpdump")
        expression = "tcp and (" + " or ".join(f"port {p}" for p in sorted(self.ports)) + ")"
        self.proc = subprocess.Popen([tcpdump, "-i", "lo", "-nn", "-s", "256", "--time-stamp-precision", "nano",
                                      "-w", str(self.path), expression],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline() if self.proc.stderr else b""   # "listening on lo, ..." or why not
        if b"listening" not in line:
            self.proc.kill()
            raise SystemExit(f"tcpdump did not start: {line.decode(errors='replace').strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            time.sleep(FLUSH_S)
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=10)

    def latencies(self) -> list[tuple[float, float]]:
        """(request's time, wire latency in ms) for every answered request, in the capture's order."""
        return wire_latencies(self.path.read_bytes(), self.ports)

    def stats(self, warmup: float) -> dict:
        found = self.latencies()
        if not found:
            return {"wire_requests": 0}
        first = found[0][0]
        ms = np.asarray([latency for t, latency in found if t - first >= warmup])
        return {"wire_requests": len(ms), "wire_p50_ms": round(float(np.percentile(ms, 50)), 3),
                "wire_p99_ms": round(float(np.percentile(ms, 99)), 3)}


def wire_latencies(capture: bytes, ports: set[int]) -> list[tuple[float, float]]:
    magic, = struct.unpack_from("<I", capture, 0)
    linktype, = struct.unpack_from("<I", capture, 20)
    if magic != NANO_MAGIC or linktype != ETHERNET:
        raise ValueError(f"not a nanosecond Ethernet pcap (magic {magic:#x}, link type {linktype})")
    open_: dict[tuple[int, int], list[float | None]] = {}   # (client port, server port) → [request, last answer]
    out: list[tuple[float, float]] = []

    def close(flow: tuple[int, int]) -> None:
        request, answer = open_.pop(flow, (None, None))
        if request is not None and answer is not None:
            out.append((request, (answer - request) * 1000.0))

    offset = 24
    while offset + 16 <= len(capture):
        seconds, nanoseconds, length, _ = struct.unpack_from("<IIII", capture, offset)
        packet = capture[offset + 16:offset + 16 + length]
        offset += 16 + length
        if packet[12:14] != b"\x08\x00" or packet[23] != 6:   # IPv4, TCP
            continue
        ihl = (packet[14] & 0x0F) * 4
        total, = struct.unpack_from("!H", packet, 16)
        tcp = 14 + ihl
        source, destination = struct.unpack_from("!HH", packet, tcp)
        header = (packet[tcp + 12] >> 4) * 4
        if total - ihl - header <= 0:   # no payload: SYN, ACK, FIN
            continue
        payload, stamp = packet[tcp + header:tcp + header + 8], seconds + nanoseconds / 1e9
        if destination in ports:          # client → server
            if payload[:4] in (b"POST", b"GET ", b"PUT "):
                flow = (source, destination)
                close(flow)
                open_[flow] = [stamp, None]
        elif source in ports and (destination, source) in open_:
            open_[(destination, source)][1] = stamp
    for flow in list(open_):
        close(flow)
    out.sort()
    return out
