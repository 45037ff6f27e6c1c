"""Load generator accuracy: the lab's generator vs vegeta (a Go open-loop generator), same servers, same rate.

Per lane one model server (as in a run: every lane gets the same stream). At each rate per lane, ours and
vegeta take turns (order alternating) driving every lane with evenly spaced arrivals, lane k's k/(lanes ×
rate) after lane 0's (ours staggers its lanes so, by at most 20 ms; one vegeta attack on all the lanes'
servers, which takes its targets in turn, does the same), keep-alive connections, the same 1-row body.

Compared, per run (the first second dropped for both): p50 and p99 latency over the same span, the one
vegeta times (from the request's write to the client having the whole answer; ours: latency - lag +
wake-up), and our schedule lag (how late each request left). A rate is *accurate* when our p50 and p99 are
within 10 % of vegeta's (or within 0.1 ms, the resolution at which a Python client and a Go client can
agree on sub-millisecond latencies), our lag p99 is under 1 ms and nothing failed. Two more verdicts: ours
as the lab records them (from the intended time to the answer's arrival, the kernel's stamp: without our
wake-up, with our lag) against vegeta's, and both from their intended times (vegeta's own lag is measured:
its pacer is constant, so hit `seq` was due at start + seq/(lanes × rate), and its timestamp is when a
worker began it). A rate is *on schedule* (the weaker test) when our lag p99 is under 5 ms, every request
was sent and nothing failed.

vegeta comes from the Go module proxy: `go install github.com/tsenart/vegeta/v12@v12.13.0` into
~/.cache/mlopslab-bin (done here when missing; the binary never enters the repository).

    python benchmarks/bench_loadgen.py [--lanes 2] [--rates 25 50 100 200 400 800] [--duration 8] [--probes]
        [--wire] [--baseline /work/main] [--arm 'spin0={"spin_ms": 0}'] [--spin-ms 0.5]
--baseline adds an arm: the generator of another checkout (e.g. before a change); --arm adds arms of this
generator with other settings; all arms and vegeta take turns on the same servers.
--wire captures every run on lo (tcpdump, benchmarks/wire.py) and compares each generator's latencies with
the wire's in the same run: the reference no client's overhead is in. Ours is *as accurate as vegeta* at a
rate when its error against the wire is at most vegeta's (or 0.1 ms) at p50 and p99 and its lag p99 < 1 ms.
--probes first compares clients (aiohttp, httpx, our httptools pool: sequential keep-alive requests) and the event
loop's timer (epoll vs select), the measurements behind the generator's choices.
Ours reports its wake-up too: from the answer's arrival (the kernel's timestamp, where its latency ends) to
the generator reading it.
Writes benchmarks/results/loadgen.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench_serving import ROOT, free_port, register_model, wait_ready
from wire import Wire

VEGETA = "github.com/tsenart/vegeta/v12@v12.13.0"
BIN = Path(os.environ.get("MLOPSLAB_BIN", Path.home() / ".cache" / "mlopslab-bin"))
WARMUP = 1.0      # seconds dropped at the start of every run (connections being opened)
TOLERANCE = 0.10  # relative
FLOOR_MS = 0.1    # absolute: below this, a difference is client overhead, not a different measurement
MAX_LAG_MS = 1.0
ON_SCHEDULE_LAG_MS = 5.0  # the weaker test: the generator keeps its schedule (it is not falling behind)


def ensure_vegeta() -> str:
    path = shutil.which("vegeta") or (str(BIN / "vegeta") if (BIN / "vegeta").exists() else None)
    if path is None:
        if not shutil.which("go"):
            sys.exit(f"vegeta is needed: go install {VEGETA}")
        BIN.mkdir(parents=True, exist_ok=True)
        subprocess.run(["go", "install", VEGETA], check=True, env={**os.environ, "GOBIN": str(BIN)})
        path = str(BIN / "vegeta")
    return path


def body_file(work: Path) -> Path:
    from mlopslab.ml.data import DataSpec, DataStream

    stream = DataStream(DataSpec(), 2)
    X, _ = stream.sample(1)
    path = work / "body.json"
    path.write_text(json.dumps({"dataframe_split": {"columns": list(stream.feature_names),
                                                    "data": [[round(float(v), 6) for v in X[0]]]}}))
    return path


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the rounds (one stalled round cannot decide a rate); failures add up."""
    return {key: float((sum if key in ("failed", "requests") else np.median)([r[key] for r in runs])) for key in runs[0]}


def percentiles(name: str, values: Any) -> dict:
    """{name + "p50_ms", name + "p99_ms"}, rounded to the microsecond."""
    return {f"{name}p{q}_ms": round(float(np.percentile(values, q)), 3) for q in (50, 99)}


def stats(latencies_ms: list[float], seconds: float, failed: int, lags_ms: list[float] | None = None,
          wakes_ms: list[float] | None = None) -> dict:
    lat = np.asarray(latencies_ms)
    out = {"requests": len(lat), "rate": round(len(lat) / seconds, 1), "failed": failed} | percentiles("", lat)
    if lags_ms is not None:  # ours: also from when each request left, which is what vegeta measures
        lags = np.asarray(lags_ms)
        out |= percentiles("lag_", lags) | percentiles("sent_", lat - lags)
    if wakes_ms is not None:  # from the answer's arrival (kernel stamp, where lat ends) to the process reading it
        wakes = np.asarray(wakes_ms)
        out |= percentiles("wake_", wakes) | percentiles("read_", lat + wakes)   # read: as if lat ended there
        if lags_ms is not None:  # the span vegeta times: from the request's write to the client having the answer
            out |= percentiles("span_", lat - lags + wakes)
    return out


def run_ours(urls: list[str], rate: float, duration: float, extra: dict | None = None,
             checkout: str | None = None) -> dict:
    """`extra`: more generator config (e.g. spin_ms); `checkout`: run the generator of another checkout
    (e.g. the one before a change), on the same servers and body."""
    lanes = [f"lane{k}" for k in range(len(urls))]
    start = time.monotonic() + 2.0  # the generator's imports happen before its clock starts
    config = {"rate": rate, "t0": start, "duration": duration, "seed": 1, "lanes": lanes, "pacing": "constant",
              **(extra or {})}
    env = {**os.environ, "PYTHONPATH": checkout} if checkout else None
    cpu = _children_cpu()
    proc = subprocess.Popen([sys.executable, "-m", "mlopslab.traffic.loadgen", json.dumps(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                            cwd=checkout or ROOT)  # -m puts the working directory first on sys.path
    for lane, url in zip(lanes, urls):
        proc.stdin.write(json.dumps({"op": "endpoints", "lane": lane, "endpoints": [[url, "1"]]}) + "\n")
    proc.stdin.flush()
    latencies, lags, wakes, failed = [], [], [], 0
    for line in proc.stdout:
        record = json.loads(line)
        if "lane" not in record or record["t"] < WARMUP:
            continue
        if record["st"] != 200:
            failed += 1
        latencies.append(record["lat"])
        lags.append(record["lag"])
        wakes.append(record.get("w", 0.0))   # a generator before kernel timestamps has none
    proc.stdin.close()
    proc.wait(timeout=30)
    out = stats(latencies, (duration - WARMUP) * len(urls), failed, lags, wakes)
    return out | {"cpu_s": round(_children_cpu() - cpu, 2)}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the children waited for so far: a run's generator, once reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_vegeta(vegeta: str, urls: list[str], body: Path, rate: float, duration: float, work: Path) -> dict:
    """One attack on every lane's server at lanes × rate: vegeta takes its targets in turn, so lane k's hits
    come k/(lanes × rate) after lane 0's, the same offsets as ours."""
    targets = work / "targets.txt"
    targets.write_text("\n".join(f"POST {url}/invocations\nContent-Type: application/json\n@{body}\n" for url in urls))
    total = rate * len(urls)
    cpu = _children_cpu()
    subprocess.run(f"{vegeta} attack -rate={total:g}/s -duration={duration:g}s -targets={targets} -keepalive=true "
                   f"| {vegeta} encode --to json > {work / 'results.json'}", shell=True, check=True,
                   timeout=duration + 60)
    cpu = _children_cpu() - cpu   # vegeta attack and encode
    results = [json.loads(line) for line in (work / "results.json").read_text().splitlines()]
    # vegeta's own lag: hit `seq` was due at start + seq/total (its pacer is constant); its timestamp is when
    # a worker began it. The start is taken as the least late hit's, so this lag is a lower bound.
    behind = {r["seq"]: _seconds(r["timestamp"]) - r["seq"] / total for r in results}
    start = min(behind.values())
    latencies, lags, failed = [], [], 0
    for r in results:
        if behind[r["seq"]] + r["seq"] / total - start < WARMUP:
            continue
        latencies.append(r["latency"] / 1e6)
        lags.append((behind[r["seq"]] - start) * 1000.0)
        failed += r["code"] != 200
    out = stats(latencies, (duration - WARMUP) * len(urls), failed) | {"cpu_s": round(cpu, 2)}
    intended = np.asarray(latencies) + np.asarray(lags)   # vegeta's latency measured as the lab measures ours
    return out | percentiles("lag_", lags) | percentiles("intended_", intended)


def _seconds(timestamp: str) -> float:
    """RFC 3339 with nanoseconds → seconds within the day (enough for differences inside one run)."""
    clock = timestamp.split("T")[1][:18].rstrip("Z+-")
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def accurate(ours: dict, reference: dict, since: str = "", reference_since: str = "", lag: bool = True) -> bool:
    """`since` "span_": ours over the span vegeta times (the request's write to the client having the answer);
    "": ours as the lab records them (the intended time to the answer's arrival). `reference_since`
    "intended_": vegeta's from its own intended time (its latency plus its lag). Our lag itself must stay
    under MAX_LAG_MS either way, unless `lag` is off (vegeta against the wire: its lag is not in its latency)."""
    def close(a: float, b: float) -> bool:
        return abs(a - b) <= max(TOLERANCE * b, FLOOR_MS)

    return bool(close(ours[f"{since}p50_ms"], reference[f"{reference_since}p50_ms"])
            and close(ours[f"{since}p99_ms"], reference[f"{reference_since}p99_ms"])
            and (not lag or ours["lag_p99_ms"] < MAX_LAG_MS) and ours["failed"] == 0 and reference["failed"] == 0)


def error(run: dict, q: str) -> float:
    """How far a generator's latency percentile sits from the wire's in the same run (ms)."""
    return abs(run[f"p{q}_ms"] - run[f"wire_p{q}_ms"])


def as_accurate_as(ours: dict, reference: dict) -> bool:
    """Against the wire, our error is at most the reference's (or FLOOR_MS) at p50 and p99, our lag p99 is
    under MAX_LAG_MS and nothing failed: the generator measures the servers at least as well as vegeta."""
    return bool(all(error(ours, q) <= max(error(reference, q), FLOOR_MS) for q in ("50", "99"))
                and ours["lag_p99_ms"] < MAX_LAG_MS and ours["failed"] == 0 and reference["failed"] == 0)


def on_schedule(ours: dict, rate: float) -> bool:
    return bool(ours["lag_p99_ms"] < ON_SCHEDULE_LAG_MS and ours["failed"] == 0 and ours["rate"] >= 0.99 * rate)


def compare_clients(url: str, body: bytes, n: int = 2000, rounds: int = 2) -> dict:
    """Sequential keep-alive requests with each candidate client library: what one request costs a client."""
    import asyncio

    async def with_aiohttp() -> list[float]:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            times = []
            for _ in range(n):
                started = time.perf_counter()
                async with session.post(url + "/invocations", data=body, headers=JSON) as response:
                    await response.read()
                times.append(time.perf_counter() - started)
            return times

    async def with_httpx() -> list[float]:
        import httpx

        async with httpx.AsyncClient() as client:
            times = []
            for _ in range(n):
                started = time.perf_counter()
                (await client.post(url + "/invocations", content=body, headers=JSON)).read()
                times.append(time.perf_counter() - started)
            return times

    async def with_pool() -> list[float]:  # the generator's own: asyncio Protocol + httptools
        from mlopslab.traffic.client import Pool

        pool, times = Pool(8, 2.0), []
        for _ in range(n):
            answered = asyncio.get_running_loop().create_future()
            started = time.perf_counter()
            pool.post(url, "/invocations", body, lambda *result: answered.set_result(result))
            await answered
            times.append(time.perf_counter() - started)
        pool.close()
        return times

    out: dict[str, list[dict]] = {}
    for _ in range(rounds):  # interleaved
        for name, client in (("aiohttp", with_aiohttp), ("httpx", with_httpx), ("httptools pool", with_pool)):
            ms = np.asarray(asyncio.run(client())[n // 10:]) * 1000
            out.setdefault(name, []).append({"mean_ms": round(float(ms.mean()), 3),
                                             "p50_ms": round(float(np.percentile(ms, 50)), 3),
                                             "requests_per_s": round(1000 / float(ms.mean()))})
            print(name, out[name][-1], flush=True)
    return out


def compare_timers(interval: float = 0.01, n: int = 500) -> dict:
    """How late asyncio.sleep wakes up with the default (epoll) loop and with select(2)."""
    import asyncio
    import selectors

    async def lateness() -> list[float]:
        late, t = [], time.monotonic()
        for _ in range(n):
            t += interval
            await asyncio.sleep(t - time.monotonic())
            late.append((time.monotonic() - t) * 1000)
        return late

    out = {}
    for name, factory in (("epoll (default)", None),
                          ("select", lambda: asyncio.SelectorEventLoop(selectors.SelectSelector()))):
        with asyncio.Runner(loop_factory=factory) as runner:
            ms = np.asarray(runner.run(lateness()))
        out[name] = {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}
        print("timer", name, out[name], flush=True)
    return out


JSON = {"Content-Type": "application/json"}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--rates", type=float, nargs="+", default=[25, 50, 100, 200, 400, 800])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1, help="runs per rate and generator; medians are reported")
    parser.add_argument("--probes", action="store_true", help="also compare client libraries and event-loop timers")
    parser.add_argument("--spin-ms", type=float, default=None, help="ours with this spin_ms (the default: the shipped one)")
    parser.add_argument("--arm", action="append", default=[], metavar="NAME=JSON",
                        help="another arm of ours, interleaved: extra generator config, e.g. 'spin0={\"spin_ms\": 0}'")
    parser.add_argument("--wire", action="store_true",
                        help="also capture every run on lo (tcpdump) and compare each generator with the wire")
    parser.add_argument("--baseline", default=None, metavar="CHECKOUT",
                        help="another arm: the generator of that checkout (e.g. /work/main before a change)")
    args = parser.parse_args()
    arms: dict[str, tuple[dict | None, str | None]] = {
        "ours": ({"spin_ms": args.spin_ms} if args.spin_ms is not None else None, None)}
    for arm in args.arm:
        name, _, extra = arm.partition("=")
        arms[name] = (json.loads(extra), None)
    if args.baseline:
        arms["baseline"] = (None, args.baseline)
    vegeta = ensure_vegeta()
    work = Path(tempfile.mkdtemp(prefix="bench-loadgen-"))
    registry, mv = register_model(work / "registry")
    body = body_file(work)
    servers = []
    for _ in range(args.lanes):
        port = free_port()
        servers.append(subprocess.Popen([sys.executable, "-m", "mlopslab.serving.server", "--model-dir",
                                         str(registry.serving_dir(mv.name, mv.version)), "--port", str(port),
                                         "--parent-pid", str(os.getpid())]))
        servers[-1].url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        for server in servers:
            wait_ready(server.url, server)
        urls = [s.url for s in servers]
        ports = [int(url.rsplit(":", 1)[1]) for url in urls]
        probes = {"clients": compare_clients(urls[0], body.read_bytes()), "timers": compare_timers()} \
            if args.probes else None
        for n, rate in enumerate(args.rates):
            rounds: dict[str, list[dict]] = {name: [] for name in (*arms, "vegeta")}
            for rnd in range(args.rounds):
                order = list(rounds)
                for name in (order if (n + rnd) % 2 == 0 else order[::-1]):
                    def run(name: str = name) -> dict:
                        return (run_vegeta(vegeta, urls, body, rate, args.duration, work) if name == "vegeta"
                                else run_ours(urls, rate, args.duration, *arms[name]))
                    if args.wire:
                        with Wire(ports, work, name) as wire:
                            result = run()
                        result |= wire.stats(WARMUP)
                    else:
                        result = run()
                    rounds[name].append(result)
                    print(f"  {rate:g}/s round {rnd} {name}: {rounds[name][-1]} load {os.getloadavg()[0]:.2f}",
                          flush=True)
            runs = {name: median_run(results) for name, results in rounds.items()}
            others = {name: {"accurate": accurate(runs[name], runs["vegeta"], "span_"),
                             "accurate_recorded": accurate(runs[name], runs["vegeta"])}
                      for name in arms if name != "ours"}
            row = {"rate_per_lane": rate, **runs, "rounds": rounds,
                   "accurate": accurate(runs["ours"], runs["vegeta"], "span_"),
                   "accurate_recorded": accurate(runs["ours"], runs["vegeta"]),
                   "accurate_intended": accurate(runs["ours"], runs["vegeta"], "", "intended_"),
                   "on_schedule": on_schedule(runs["ours"], rate), "other_arms": others,
                   **({"accurate_wire": accurate(runs["ours"], runs["ours"], "", "wire_"),
                       "as_accurate_as_vegeta": as_accurate_as(runs["ours"], runs["vegeta"]),
                       "vegeta_accurate_wire": accurate(runs["vegeta"], runs["vegeta"], "", "wire_", lag=False)}
                      if args.wire else {}),
                   "loadavg": os.getloadavg()}
            rows.append(row)
            o, v = runs["ours"], runs["vegeta"]
            print(f"{rate:6g}/s/lane  ours p50 {o['span_p50_ms']:7.3f} p99 {o['span_p99_ms']:7.3f} (recorded "
                  f"{o['p50_ms']:.3f} {o['p99_ms']:.3f}) lag p99 {o['lag_p99_ms']:6.3f} wake p50 {o['wake_p50_ms']:.3f} "
                  f"rate {o['rate']:7.1f} fail {o['failed']} | vegeta p50 {v['p50_ms']:7.3f} p99 {v['p99_ms']:7.3f} "
                  f"rate {v['rate']:7.1f} fail {v['failed']} | accurate {row['accurate']} on schedule {row['on_schedule']}",
                  flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    highest = max((r["rate_per_lane"] for r in rows if r["accurate"]), default=None)
    scheduled = max((r["rate_per_lane"] for r in rows if r["on_schedule"]), default=None)
    table = summarise(rows, args.lanes, highest, scheduled)
    print("\n" + table + f"\n\nLoad average (1, 5, 15 min) at the end: {os.getloadavg()}")
    (ROOT / "benchmarks" / "results").mkdir(exist_ok=True)
    (ROOT / "benchmarks" / "results" / "loadgen.json").write_text(json.dumps(
        {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_after": os.getloadavg()},
         "lanes": args.lanes,
         "duration_s": args.duration, "rounds": args.rounds, "rows": rows, "probes": probes,
         "highest_accurate_rate_per_lane": highest,
         "highest_on_schedule_rate_per_lane": scheduled}, indent=2))
    return 0


def pair(run: dict, name: str = "") -> str:
    """A run's p50 / p99 of one figure, as the tables show it."""
    return f"{run[f'{name}p50_ms']:.3f} / {run[f'{name}p99_ms']:.3f} ms"


def summarise(rows: list[dict], lanes: int, highest: float | None, scheduled: float | None) -> str:
    lines = [f"{lanes} lanes, one server each, evenly spaced arrivals (lane k's k/(lanes × rate) after lane 0's), "
             "keep-alive, 1-row body. Same span: from the request's write to the client having the answer, as "
             "vegeta times it. As recorded: ours from the intended time to the answer's arrival (kernel stamp).", "",
             "| rate / lane | ours p50 / p99, same span | vegeta p50 / p99 | ours as recorded p50 / p99 "
             "| our lag p50 / p99 | vegeta's lag p50 / p99 | our wake-up p50 / p99 | sent / s (ours, vegeta) "
             "| CPU s per run (ours, vegeta) | accurate: same span (as recorded) [both from intended] "
             "| on schedule |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    yes = {True: "yes", False: "no"}
    for r in rows:
        o, v = r["ours"], r["vegeta"]
        lines.append(f"| {r['rate_per_lane']:g}/s | {pair(o, 'span_')} | {pair(v)} | {pair(o)} | {pair(o, 'lag_')} "
                     f"| {pair(v, 'lag_')} | {pair(o, 'wake_')} | {o['rate']:.0f}, {v['rate']:.0f} "
                     f"| {o['cpu_s']:.2f}, {v['cpu_s']:.2f} | {yes[r['accurate']]} ({yes[r['accurate_recorded']]}) "
                     f"[{yes[r['accurate_intended']]}] | {yes[r['on_schedule']]} |")
    if any(r["other_arms"] for r in rows):
        lines += ["", "Other arms of ours (same runs, interleaved):", "",
                  "| arm | rate / lane | p50 / p99, same span | as recorded p50 / p99 | lag p50 / p99 "
                  "| wake-up p50 / p99 | CPU s per run | accurate: same span (as recorded) |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            for name, verdict in r["other_arms"].items():
                o = r[name]
                lines.append(f"| {name} | {r['rate_per_lane']:g}/s | {pair(o, 'span_')} | {pair(o)} | {pair(o, 'lag_')} "
                             f"| {pair(o, 'wake_')} | {o['cpu_s']:.2f} "
                             f"| {yes[verdict['accurate']]} ({yes[verdict['accurate_recorded']]}) |")
    if "accurate_wire" in rows[0]:
        lines += ["", "Against the wire (a capture on lo during every run: from the request's first packet to the "
                  "answer's last; the reference no client's overhead is in):", "",
                  "| rate / lane | ours as recorded p50 / p99 | wire, ours' runs | vegeta p50 / p99 | wire, vegeta's runs "
                  "| error p50 / p99: ours, vegeta | our lag p99 | within 10 % or 0.1 ms of the wire: ours (vegeta) "
                  "| ours as accurate as vegeta |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            o, v = r["ours"], r["vegeta"]
            errors = [f"{error(run, '50'):.2f} / {error(run, '99'):.2f}" for run in (o, v)]
            lines.append(f"| {r['rate_per_lane']:g}/s | {pair(o)} | {pair(o, 'wire_')} | {pair(v)} | {pair(v, 'wire_')} "
                         f"| {errors[0]}, {errors[1]} ms "
                         f"| {o['lag_p99_ms']:.3f} ms | {yes[r['accurate_wire']]} ({yes[r['vegeta_accurate_wire']]}) "
                         f"| {yes[r['as_accurate_as_vegeta']]} |")
        lines.append("")
        for key, words in (("accurate_wire", "within 10 % or 0.1 ms of the wire"),
                           ("as_accurate_as_vegeta", "as close to the wire as vegeta, lag p99 < 1 ms")):
            best = [f"{r['rate_per_lane']:g}" for r in rows if r[key]]
            lines.append(f"Rates per lane at which ours is {words}: {', '.join(best) or 'none'}")
    lines.append(f"\nHighest accurate rate per lane (same span): {highest:g}/s" if highest else "\nNo rate was accurate.")
    for key, words in (("accurate_recorded", "ours as recorded"), ("accurate_intended", "both from intended times")):
        best = max((r["rate_per_lane"] for r in rows if r[key]), default=None)
        lines.append(f"Highest accurate rate per lane, {words}: {best:g}/s" if best else f"No rate was accurate, {words}.")
    lines.append(f"Highest rate per lane on schedule (lag p99 < {ON_SCHEDULE_LAG_MS:g} ms, every request sent): "
                 f"{scheduled:g}/s" if scheduled else "No rate kept the schedule.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
