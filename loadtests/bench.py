"""The benchmark of record: the service against a bare Tornado relay, in the same run.

    python loadtests/bench.py --out bench.json            # full run (several minutes)
    python loadtests/bench.py --quick --out quick.json    # about a minute, for CI

The servers run as subprocesses on 127.0.0.1 (``transport.server`` and
``loadtests/floor_relay.py``, the floor: same wire protocol, no actors, no validation,
no metrics; by default twice, on asyncio's loop as a user would write it and on
uvloop, which the service runs on by default), each driven by its own load-generator
process (``loadtests/loadgen.py``). Scenarios, each on fresh server processes:

- connect N peers in N/2 rooms: RSS and server CPU per connection;
- with the largest N still connected, fixed-rate relay of ~1 KB SDP-like offers at
  each rate: delivered ratio, p50/p99 latency (send to receive), and server CPU
  seconds (user+sys from /proc/PID/stat) per 10k relayed messages;
- call setups (REST join x2, two WebSockets, offer/answer, 10 candidates each way,
  leave) in a closed loop: setups/s, server CPU per setup, p50/p99 setup time.

The relay and the setups run on every server at once, each server's share cut into
slices that alternate between them (``alternate``), so a drift of the machine's speed
lands on every server alike.

CPU is read from /proc, so the figures stay honest on a shared machine; latencies and
rates depend on the machine being otherwise idle. Every figure is the median over
``--repeats`` runs (servers alternate order between repeats) and comes with the
service/floor ratio (and service/floor-uvloop). Output: JSON (``--out``) and a
markdown table (``--md``, and stdout). Everything started is killed at the end; only
127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from launch import FLOOR, SERVICE, Launched, LaunchError, launch, stop
from loadgen import percentile
from wire import LIFTED_PER_ADDRESS, as_env

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
SERVICE_ENV = as_env(LIFTED_PER_ADDRESS)  # every peer dials from 127.0.0.1 (see wire.py)
EVENT_LOOP = re.compile(r"event loop: (\w+)")  # logged by both servers before they listen
FLOOR_KINDS = {"asyncio": "floor", "uvloop": "floor-uvloop"}  # --floors -> server kind

# Targets of issue 12, against the floors measured in the same run (docs/performance.md).
TARGET_CPU_PER_MSG = 1.0  # x the floor on asyncio's loop, at every rate
TARGET_CPU_PER_MSG_UVLOOP = 1.2  # x the same relay on uvloop
TARGET_CPU_PER_SETUP = 1.0  # x the floor
TARGET_SETUPS_PER_S = 1.0  # x the floor's call setups per second, at least
TARGET_RSS_KB_PER_CONN = 16.0  # KB per connection at the largest N (then aim at 10)
TARGET_P99_MS = 5.0  # at the lowest rate, with the largest N connected


class BenchError(RuntimeError):
    pass


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft open-files limit (inherited by the servers and generators)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


kill = stop


# -- the server under test --


ServerProc = Launched  # process, ports, log file, CPU and RSS from /proc


def server_command(kind: str, ping_interval: float, service_loop: str = "auto") -> tuple[tuple[str, ...], list[str]]:
    """(program, arguments) of the server of ``kind``; the launcher adds the ports."""
    if kind == "service":
        return SERVICE, ["--ping-interval", str(ping_interval), "--loop", service_loop]
    # --nodelay: the service sets TCP_NODELAY on every WebSocket, so the floor does too.
    loop = "uvloop" if kind == FLOOR_KINDS["uvloop"] else "asyncio"
    return FLOOR, ["--ping-interval", str(ping_interval), "--nodelay", "--loop", loop]


def server_loop(server: ServerProc) -> str:
    """The event loop the server logged that it runs on."""
    match = EVENT_LOOP.search(server.log_text())
    return match.group(1) if match else "unknown"


@contextmanager
def start_server(kind: str, ping_interval: float, workdir: Path, service_loop: str = "auto") -> Iterator[ServerProc]:
    program, args = server_command(kind, ping_interval, service_loop)
    try:
        with launch(
            *args,
            program=program,
            env=SERVICE_ENV if kind == "service" else {},
            log_path=workdir / f"{kind}-{time.monotonic_ns()}.log",
        ) as server:
            yield server
    except LaunchError as exc:
        raise BenchError(f"{kind}: {exc}") from None


# -- the load generator --


class GeneratorProc:
    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "loadgen.py"), str(port)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def call(self, timeout: float, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise BenchError(f"generator did not answer {command['cmd']} within {timeout:.0f}s")
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"generator exited with {self.proc.poll()} during {command['cmd']}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"generator failed {command['cmd']}: {reply['traceback']}")
        return reply

    def close(self) -> None:
        try:
            self.call(timeout=60, cmd="quit")
        except (BenchError, OSError, ValueError):
            pass
        kill(self.proc, grace=10)


@contextmanager
def start_generator(port: int) -> Iterator[GeneratorProc]:
    gen = GeneratorProc(port)
    try:
        yield gen
    finally:
        gen.close()


# -- scenarios --


def warm_up(gen: GeneratorProc, server: ServerProc) -> None:
    """First-use costs (imports, schema set-up, allocator growth) must not count."""
    gen.call(60, cmd="connect", n=40, concurrency=20, prefix="warm")
    gen.call(60, cmd="relay", rate=1000, seconds=0.3, size=1024, drain=5)
    gen.call(60, cmd="close")
    server.check_alive()
    time.sleep(0.5)


def run_connect(gen: GeneratorProc, server: ServerProc, n: int, cfg: argparse.Namespace) -> dict[str, Any]:
    rss0, cpu0 = server.rss_kb(), server.cpu_seconds()
    reply = gen.call(120 + n / 20, cmd="connect", n=n, concurrency=cfg.connect_concurrency, prefix=f"c{n}")
    cpu1 = server.cpu_seconds()
    time.sleep(1.0)  # let the server settle before reading its RSS
    rss1 = server.rss_kb()
    server.check_alive()
    connected = reply["connected"]
    if reply["failed"]:
        log(f"  {reply['failed']} connection failures, e.g. {reply['failures'][:2]}")
    return {
        "connected": connected,
        "failed": reply["failed"],
        "rss_kb_per_conn": (rss1 - rss0) / max(connected, 1),
        "cpu_ms_per_conn": (cpu1 - cpu0) * 1000 / max(connected, 1),
        "connects_per_s": connected / reply["seconds"],
        "rss_mb_total": rss1 / 1024,
    }


def relay_phase(
    gen: GeneratorProc,
    server: ServerProc,
    cfg: argparse.Namespace,
    rate: float,
    seconds: float,
    raw: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """One relay command (loadgen.py; ``pairs``/``broadcast`` pass through), with the
    server's CPU over it. Per 10k *delivered* copies: a broadcast frame counts k-1 times.
    ``raw`` adds what merge_relays needs to sum slices (``_raw``: CPU, times, latencies)."""
    cpu0, t0 = server.cpu_seconds(), time.monotonic()
    reply = gen.call(
        seconds + cfg.drain + 120,
        cmd="relay",
        rate=rate,
        seconds=seconds,
        size=cfg.size,
        drain=cfg.drain,
        with_latencies=raw,
        **options,
    )
    cpu = server.cpu_seconds() - cpu0
    wall = time.monotonic() - t0
    server.check_alive()
    delivered = reply["received"]
    if reply["lost"] or reply["error_frames"] or reply["misrouted"] or reply["late_from_earlier"]:
        log(
            f"  lost {reply['lost']}, error frames {reply['error_frames']}, misrouted {reply['misrouted']}, "
            f"late from an earlier phase {reply['late_from_earlier']} {reply['error_samples'][:2]}"
        )
    figures = {
        "sent": reply["sent"],
        "expected": reply["expected"],
        "delivered": delivered,
        "delivered_ratio": reply["delivered_ratio"],
        "lost": reply["lost"],
        "duplicates": reply["duplicates"],
        "misrouted": reply["misrouted"],
        "late_from_earlier": reply["late_from_earlier"],
        "error_frames": reply["error_frames"],
        "p50_ms": reply["p50_ms"],
        "p99_ms": reply["p99_ms"],
        "p999_ms": reply["p999_ms"],
        "max_ms": reply["max_ms"],
        "cpu_s_per_10k": cpu * 10_000 / max(delivered, 1),
        "server_cpu_util": cpu / wall,
        "offered_rate": rate,
        "achieved_rate": reply["achieved_rate"],
        "sender_lag_ms": reply["sender_lag_ms"],
        "frame_bytes": reply["frame_bytes"],
        "generator_cpu_util": reply["generator_cpu_s"] / wall,
    }
    if raw:
        figures["_raw"] = {
            "cpu": cpu,
            "wall": wall,
            "generator_cpu": reply["generator_cpu_s"],
            "send_seconds": reply["send_seconds"],
            "latencies_ms": reply["latencies_ms"],
        }
    return figures


def merge_relays(slices: list[dict[str, Any]]) -> dict[str, Any]:
    """One relay figure from relay_phase(raw=True) slices: counts and CPU summed,
    percentiles over every latency of every slice."""
    raw = [s.pop("_raw") for s in slices]

    def total(key: str) -> Any:
        return sum(s[key] for s in slices)

    delivered, expected = total("delivered"), total("expected")
    cpu, wall = sum(r["cpu"] for r in raw), sum(r["wall"] for r in raw)
    latencies = sorted(ms for r in raw for ms in r["latencies_ms"])
    send_seconds = sum(r["send_seconds"] for r in raw)
    return {
        "sent": total("sent"),
        "expected": expected,
        "delivered": delivered,
        "delivered_ratio": delivered / expected if expected else None,
        "lost": total("lost"),
        "duplicates": total("duplicates"),
        "misrouted": total("misrouted"),
        "late_from_earlier": total("late_from_earlier"),
        "error_frames": total("error_frames"),
        "p50_ms": percentile(latencies, 0.50) or 0.0,
        "p99_ms": percentile(latencies, 0.99) or 0.0,
        "p999_ms": percentile(latencies, 0.999) or 0.0,
        "max_ms": max(s["max_ms"] for s in slices),
        "cpu_s_per_10k": cpu * 10_000 / max(delivered, 1),
        "server_cpu_util": cpu / wall,
        "offered_rate": slices[0]["offered_rate"],
        "achieved_rate": total("sent") / send_seconds if send_seconds else None,
        "sender_lag_ms": max(s["sender_lag_ms"] for s in slices),
        "frame_bytes": slices[0]["frame_bytes"],
        "generator_cpu_util": sum(r["generator_cpu"] for r in raw) / wall,
    }


def alternate(kinds: list[str], slices: int) -> Iterator[str]:
    """Each server's share of a phase in ``slices`` turns, in the order floor, uvloop
    floor, service, service, uvloop floor, floor, ...: the machine's speed drifts over
    minutes (whole repeats of one server ran 20-40% slower), and a server whose share
    ran in one slow stretch would carry the drift into its ratio."""
    for i in range(slices):
        yield from kinds if i % 2 == 0 else kinds[::-1]


def run_relays(
    servers: dict[str, tuple[ServerProc, GeneratorProc]], cfg: argparse.Namespace
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every relay rate on every server, in ``cfg.relay_slices`` alternating slices."""
    figures: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in servers}
    seconds = cfg.relay_seconds / cfg.relay_slices
    for rate in cfg.rates:
        log(f"relay {rate} msg/s: {cfg.relay_seconds:g}s per server in {cfg.relay_slices} alternating slices")
        parts: dict[str, list[dict[str, Any]]] = {kind: [] for kind in servers}
        for kind in alternate(list(servers), cfg.relay_slices):
            server, gen = servers[kind]
            parts[kind].append(relay_phase(gen, server, cfg, rate, seconds, raw=True))
        for kind, slices in parts.items():
            figures[kind][f"relay_{rate}"] = merge_relays(slices)
    return figures


def run_setups(servers: dict[str, tuple[ServerProc, GeneratorProc]], cfg: argparse.Namespace) -> dict[str, Any]:
    """Call setups on every server, in ``cfg.setup_slices`` alternating slices; each
    server's figures sum its slices."""
    totals = {kind: {"cpu": 0.0, "wall": 0.0, "gen_cpu": 0.0, "setups": 0, "failed": 0} for kind in servers}
    times: dict[str, list[float]] = {kind: [] for kind in servers}
    for kind in alternate(list(servers), cfg.setup_slices):
        server, gen = servers[kind]
        cpu0, t0 = server.cpu_seconds(), time.monotonic()
        reply = gen.call(
            cfg.setup_seconds + 120,
            cmd="setups",
            seconds=cfg.setup_seconds / cfg.setup_slices,
            concurrency=cfg.setup_concurrency,
            size=cfg.size,
        )
        total = totals[kind]
        total["cpu"] += server.cpu_seconds() - cpu0
        total["wall"] += time.monotonic() - t0
        total["gen_cpu"] += reply["generator_cpu_s"]
        total["setups"] += reply["setups"]
        total["failed"] += reply["failed"]
        times[kind] += reply["times_ms"]
        server.check_alive()
        if reply["failed"]:
            log(f"  {kind}: {reply['failed']} failed setups, e.g. {reply['failures'][:2]}")
    figures = {}
    for kind, total in totals.items():
        ordered = sorted(times[kind])
        figures[kind] = {
            "setups_per_s": total["setups"] / total["wall"],
            "failed": total["failed"],
            "cpu_ms_per_setup": total["cpu"] * 1000 / max(total["setups"], 1),
            "p50_setup_ms": percentile(ordered, 0.50) or 0.0,
            "p99_setup_ms": percentile(ordered, 0.99) or 0.0,
            "server_cpu_util": total["cpu"] / total["wall"],
            "generator_cpu_util": total["gen_cpu"] / total["wall"],
        }
    return figures


def run_connects(kind: str, cfg: argparse.Namespace, workdir: Path) -> dict[str, dict[str, Any]]:
    """The connect scenario at every N but the largest (run_largest), a fresh process each."""
    figures: dict[str, dict[str, Any]] = {}
    for n in sorted(cfg.peers)[:-1]:
        with (
            start_server(kind, cfg.ping_interval, workdir, cfg.service_loop) as server,
            start_generator(server.port) as gen,
        ):
            warm_up(gen, server)
            log(f"{kind} ({server_loop(server)}): connect {n}")
            figures[f"connect_{n}"] = run_connect(gen, server, n, cfg)
            gen.call(120 + n / 50, cmd="close")
    return figures


def start_all(
    stack: ExitStack, kinds: list[str], cfg: argparse.Namespace, workdir: Path
) -> dict[str, tuple[ServerProc, GeneratorProc]]:
    """A fresh, warmed-up process of every kind with its own generator, all up at once
    (the ones not being measured sit idle), stopped when ``stack`` closes."""
    servers: dict[str, tuple[ServerProc, GeneratorProc]] = {}
    for kind in kinds:
        server = stack.enter_context(start_server(kind, cfg.ping_interval, workdir, cfg.service_loop))
        gen = stack.enter_context(start_generator(server.port))
        warm_up(gen, server)
        servers[kind] = (server, gen)
    return servers


def run_largest(kinds: list[str], cfg: argparse.Namespace, workdir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every server up at once with the largest N connected (one after another), then
    the relay rates in alternating slices (run_relays)."""
    n = max(cfg.peers)
    figures: dict[str, dict[str, dict[str, Any]]] = {}
    with ExitStack() as stack:
        servers = start_all(stack, kinds, cfg, workdir)
        for kind, (server, gen) in servers.items():
            log(f"{kind} ({server_loop(server)}): connect {n}")
            # The loop is a string: kept in the runs, not in the medians.
            figures[kind] = {"server": {"loop": server_loop(server)}, f"connect_{n}": run_connect(gen, server, n, cfg)}
        for kind, relays in run_relays(servers, cfg).items():
            figures[kind] |= relays
        for _, gen in servers.values():
            gen.call(120 + n / 50, cmd="close")
    return figures


def run_setup_phase(kinds: list[str], cfg: argparse.Namespace, workdir: Path) -> dict[str, dict[str, Any]]:
    """Every server up at once (start_all), then run_setups."""
    with ExitStack() as stack:
        servers = start_all(stack, kinds, cfg, workdir)
        log(
            f"call setups, {cfg.setup_concurrency} at a time: {cfg.setup_seconds:g}s per server "
            f"in {cfg.setup_slices} alternating slices"
        )
        return run_setups(servers, cfg)


# -- summary --


def flatten(figures: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {
        f"{group}.{name}": value
        for group, values in figures.items()
        for name, value in values.items()
        if isinstance(value, (int, float)) and value is not None
    }


def summarize(runs: dict[str, list[dict[str, dict[str, Any]]]]) -> dict[str, dict[str, float | None]]:
    medians: dict[str, dict[str, float | None]] = {}
    for kind, reps in runs.items():
        flat = [flatten(r) for r in reps]
        keys = list(dict.fromkeys(k for f in flat for k in f))
        medians[kind] = {k: statistics.median(f[k] for f in flat if k in f) for k in keys}
    ratio: dict[str, float | None] = {}
    for key, service in medians["service"].items():
        floor = medians["floor"].get(key)
        ratio[key] = service / floor if floor not in (None, 0) and service is not None else None
    medians["ratio"] = ratio
    if "floor-uvloop" in medians:
        medians["ratio_uvloop"] = {
            key: service / floor if floor not in (None, 0) and service is not None else None
            for key, service in medians["service"].items()
            for floor in [medians["floor-uvloop"].get(key)]
        }
    return medians


def check_targets(summary: dict[str, dict[str, float | None]], cfg: argparse.Namespace) -> list[dict[str, Any]]:
    largest = max(cfg.peers)
    low_rate = min(cfg.rates)
    ratio, service = summary["ratio"], summary["service"]
    uvloop = summary.get("ratio_uvloop")
    # (target, figure, where its value is, limit, unit, True when the value must be at least the limit)
    checks: list[tuple[str, str, dict[str, float | None], float, str, bool]] = []
    for rate in cfg.rates:
        key = f"relay_{rate}.cpu_s_per_10k"
        checks.append((f"CPU per relayed message at {rate} msg/s", key, ratio, TARGET_CPU_PER_MSG, "x floor", False))
        if uvloop is not None:
            checks.append(
                (
                    f"CPU per relayed message, uvloop floor at {rate} msg/s",
                    key,
                    uvloop,
                    TARGET_CPU_PER_MSG_UVLOOP,
                    "x floor-uvloop",
                    False,
                )
            )
    checks += [
        ("CPU per call setup", "setups.cpu_ms_per_setup", ratio, TARGET_CPU_PER_SETUP, "x floor", False),
        ("call setups per second", "setups.setups_per_s", ratio, TARGET_SETUPS_PER_S, "x floor", True),
        (
            f"RSS per connection at {largest} peers",
            f"connect_{largest}.rss_kb_per_conn",
            service,
            TARGET_RSS_KB_PER_CONN,
            "KB",
            False,
        ),
        (
            f"p99 latency at {low_rate} msg/s, {largest} peers",
            f"relay_{low_rate}.p99_ms",
            service,
            TARGET_P99_MS,
            "ms",
            False,
        ),
    ]
    out = []
    for name, key, source, limit, unit, at_least in checks:
        value = source.get(key)
        met = value is not None and (value >= limit if at_least else value <= limit)
        out.append(
            {
                "target": name,
                "figure": key,
                "value": value,
                "limit": limit,
                "bound": ">=" if at_least else "<=",
                "unit": unit,
                "met": met,
            }
        )
    lost = sum(service.get(f"relay_{r}.lost") or 0 for r in cfg.rates)
    out.append(
        {
            "target": "lost messages",
            "figure": "relay_*.lost",
            "value": lost,
            "limit": 0,
            "bound": "<=",
            "unit": "messages",
            "met": lost == 0,
        }
    )
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def markdown(result: dict[str, Any]) -> str:
    summary = result["summary"]
    interval = result["config"]["ping_interval"]
    pings = f"every {interval:g}s" if interval else "off"
    lines = [
        f"Benchmark {result['started']}: {result['machine']['cpu']} x{result['machine']['cores']}, "
        f"repeats={result['config']['repeats']} (medians), frames ~{result['config']['size']} B SDP, "
        f"pings {pings}",
        "",
    ]
    uv = "floor-uvloop" in summary
    if uv:
        lines += [
            "| figure | floor | floor-uvloop | service | service/floor | service/floor-uvloop |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
    else:
        lines += ["| figure | floor | service | service/floor |", "| --- | ---: | ---: | ---: |"]
    for key in summary["service"]:
        cells = [fmt(summary["floor"].get(key))]
        cells += [fmt(summary["floor-uvloop"].get(key))] if uv else []
        cells += [fmt(summary["service"][key]), fmt(summary["ratio"].get(key))]
        cells += [fmt(summary["ratio_uvloop"].get(key))] if uv else []
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "| target | figure | value | limit | met |", "| --- | --- | ---: | ---: | --- |"]
    for check in result["targets"]:
        lines.append(
            f"| {check['target']} | {check['figure']} | {fmt(check['value'])} {check['unit']} | "
            f"{check['bound']} {check['limit']} | {'yes' if check['met'] else 'NO'} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    versions: dict[str, str | None] = {}
    for package in ("tornado", "pykka", "marshmallow", "prometheus-client", "websockets", "orjson", "uvloop"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The service against a bare Tornado relay, in the same run.")
    parser.add_argument("--quick", action="store_true", help="small N and short phases (about a minute), for CI")
    parser.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON result (default: bench.json)")
    parser.add_argument("--md", type=Path, help="markdown table (default: --out with .md)")
    parser.add_argument("--peers", help="comma-separated N for the connect scenario (default 1000,5000,10000)")
    parser.add_argument("--rates", help="comma-separated relay rates in msg/s (default 1000,5000)")
    parser.add_argument("--relay-seconds", type=float, help="seconds of each relay phase (default 10)")
    parser.add_argument("--setup-seconds", type=float, help="seconds of the call-setup phase (default 10)")
    parser.add_argument("--setup-concurrency", type=int, default=None, help="call setups in flight (default 8)")
    parser.add_argument(
        "--relay-slices",
        type=int,
        default=None,
        help="alternating slices the relay seconds of each server are cut into (default 5)",
    )
    parser.add_argument(
        "--setup-slices",
        type=int,
        default=None,
        help="alternating slices the call-setup seconds of each server are cut into (default 5)",
    )
    parser.add_argument("--connect-concurrency", type=int, default=100, help="connects in flight (default 100)")
    parser.add_argument("--repeats", type=int, help="runs per server; figures are medians (default 3)")
    parser.add_argument("--size", type=int, default=1024, help="bytes of SDP per relayed frame (default 1024)")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait for stragglers (default 5)")
    parser.add_argument(
        "--floors",
        default="asyncio,uvloop",
        help="comma-separated loops to run the floor on: asyncio (always), uvloop (default: both)",
    )
    parser.add_argument(
        "--service-loop",
        default="auto",
        choices=("auto", "asyncio", "uvloop"),
        help="the service's --loop (default auto: uvloop where installed)",
    )
    parser.add_argument(
        "--ping-interval",
        type=float,
        default=0.0,
        help="WebSocket ping interval given to both servers (default 0: off, so per-message "
        "figures count messages only)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.peers = [int(x) for x in (args.peers or ("200" if quick else "1000,5000,10000")).split(",")]
    args.rates = [int(x) for x in (args.rates or ("200,1000" if quick else "1000,5000")).split(",")]
    args.relay_seconds = args.relay_seconds or (3.0 if quick else 10.0)
    args.setup_seconds = args.setup_seconds or (4.0 if quick else 10.0)
    args.setup_concurrency = args.setup_concurrency or (4 if quick else 8)
    args.setup_slices = args.setup_slices or (2 if quick else 5)
    args.relay_slices = args.relay_slices or (2 if quick else 5)
    args.repeats = args.repeats or (1 if quick else 3)
    args.drain = min(args.drain, 3.0) if quick else args.drain
    args.md = args.md or args.out.with_suffix(".md")
    floors = {f.strip() for f in args.floors.split(",") if f.strip()} | {"asyncio"}  # ratios need it
    if not floors <= set(FLOOR_KINDS):
        parser.error(f"--floors: unknown loop in {args.floors!r} (asyncio, uvloop)")
    args.servers = [FLOOR_KINDS[f] for f in ("asyncio", "uvloop") if f in floors] + ["service"]
    return args


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    # Each server and each generator holds up to max(N) sockets, plus files of its own.
    limit = raise_fd_limit(max(cfg.peers) + 4096)
    if limit < max(cfg.peers) + 100:
        raise SystemExit(f"bench: open-files limit {limit} is too low for {max(cfg.peers)} peers")
    # SIGTERM (CI timeout, Ctrl-C from a wrapper) unwinds through the finally blocks,
    # so no server or generator outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {kind: [] for kind in cfg.servers}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for rep in range(cfg.repeats):
            order = cfg.servers if rep % 2 == 0 else cfg.servers[::-1]
            log(f"repeat {rep + 1}/{cfg.repeats}")
            figures = {kind: run_connects(kind, cfg, Path(tmp)) for kind in order}
            for kind, largest in run_largest(order, cfg, Path(tmp)).items():
                figures[kind] |= largest
            for kind, setups in run_setup_phase(order, cfg, Path(tmp)).items():
                figures[kind]["setups"] = setups
            for kind in cfg.servers:
                runs[kind].append(figures[kind])
    summary = summarize(runs)
    result: dict[str, Any] = {
        "started": started,
        "seconds": time.monotonic() - t0,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        "summary": summary,
        "targets": check_targets(summary, cfg),
        "runs": runs,
    }
    cfg.out.write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    cfg.md.write_text(table)
    print(table)
    log(f"done in {result['seconds']:.0f}s: {cfg.out}, {cfg.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
