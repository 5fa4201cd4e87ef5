"""Cost curves (issue 12): how the service's cost per message grows with the load, against the floor.

    python loadtests/curves.py --out loadtests/results/curves.json          # full: about half an hour
    python loadtests/curves.py --quick --out /tmp/curves.json              # about a minute, for CI

Three curves, each run against the floor (``floor_relay.py`` on asyncio and on uvloop,
``--floors``) and the service, with bench.py's machinery: each server a subprocess
on 127.0.0.1 (CPU and RSS from /proc), driven by its own ``loadgen.py`` process, a
fresh server per curve and repeat, servers interleaved (the order flips every time):

- ``rate``: with ``--rate-peers`` peers connected in pairs, ~1 KB offers at each offered
  rate of ``--rates`` until the server saturates. Saturation should show as queueing
  (p99 rising, server CPU utilisation near 100%), never as loss; the generator shares
  the machine, so its CPU utilisation is recorded to show when it, not the server,
  is the limit;
- ``peers``: ``--measured-pairs`` pairs relay at ``--measured-rate`` while N idle peers
  (pairs too) sit beside them, N growing through ``--peer-sizes`` in one server (the
  increments are connected): per-message CPU and p99 should stay flat, RSS grow
  linearly. At each N, ``--setup-seconds`` of call setups (8 in flight, bench.py's
  scenario) follow the relay: the CPU a setup costs should stay flat too (a room's
  start and stop must not grow with the rooms alive). A size that needs more open
  files than this process may have (the hard limit, ``ulimit -Hn``) is skipped,
  logged and recorded with the reason;
- ``roomsize``: ``--room-members`` peers in rooms of k (each of ``--room-sizes``), every
  frame sent without ``to`` (a broadcast to the k-1 others) at ``--copies-rate`` / (k-1)
  frames a second: CPU per 10k delivered copies and latency per copy.

Each phase lasts ``--seconds``; every figure is the median of ``--repeats``. Output:
``--out`` JSON (machine, command, config, every repeat's figures, medians, skipped
sizes), a markdown table per curve (``--md``, default beside ``--out``, and stdout) and
one SVG per curve beside ``--out`` (``curves-rate.svg``, ``curves-peers.svg``,
``curves-roomsize.svg``; drawn by plot.py). Only 127.0.0.1 is used; every process
started is stopped, also on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import plot
from bench import (
    FLOOR_KINDS,
    GeneratorProc,
    ServerProc,
    fmt,
    machine,
    raise_fd_limit,
    relay_phase,
    run_setups,
    server_loop,
    start_generator,
    start_server,
    warm_up,
)

CURVES = ("rate", "peers", "roomsize")
SPARE_FILES = 256  # a server's own files beside its sockets: listeners, log, epoll, imports
SETUP_CONCURRENCY = 8  # the peers curve's call setups in flight (16 sockets: within SPARE_FILES)
STYLE = {  # one look per server in every plot: the floors dashed, the service solid
    "floor": ("#566573", "6 3"),
    "floor-uvloop": ("#2471a3", "2 3"),
    "service": ("#c0392b", ""),
}

Figures = dict[str, Any]
Points = dict[str, Figures]  # a curve's points by their x, as a string (JSON keys)


def log(text: str) -> None:
    print(f"[curves {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# -- open files --


def files_cap() -> int:
    """The most open files this process may have: the hard limit, or the kernel's own
    cap (fs.nr_open) when the hard limit is unlimited."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        return int(hard)
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except OSError:
        return 1 << 20


def files_needed(n: int, measured_pairs: int) -> int:
    """Open files one process (server or generator) needs for ``n`` idle peers beside the measured pairs."""
    return n + 2 * measured_pairs + SPARE_FILES


def split_sizes(sizes: list[int], measured_pairs: int, cap: int) -> tuple[list[int], list[dict[str, Any]]]:
    """(sizes that fit, [{n, reason}] for those that do not)."""
    fit, skipped = [], []
    for n in sorted(sizes):
        need = files_needed(n, measured_pairs)
        if need <= cap:
            fit.append(n)
        else:
            skipped.append(
                {
                    "n": n,
                    "reason": f"needs {need} open files per process ({n} idle peers + {2 * measured_pairs} "
                    f"measured + {SPARE_FILES} spare); the limit here is {cap} (ulimit -Hn)",
                }
            )
    return fit, skipped


# -- one phase --


def connect(gen: GeneratorProc, cfg: argparse.Namespace, n: int, prefix: str) -> dict[str, Any]:
    reply = gen.call(120 + n / 20, cmd="connect", n=n, concurrency=cfg.connect_concurrency, prefix=prefix)
    if reply["failed"]:
        log(f"  {reply['failed']} of {n} connections failed, e.g. {reply['failures'][:2]}")
    return reply


# -- the curves: each on a fresh, warmed-up server --


def rate_curve(gen: GeneratorProc, server: ServerProc, cfg: argparse.Namespace) -> Points:
    reply = connect(gen, cfg, cfg.rate_peers, "r")
    points: Points = {}
    for rate in cfg.rates:
        log(f"  rate {rate} msg/s for {cfg.seconds:g}s, {reply['connected']} peers")
        points[str(rate)] = {"peers": reply["connected"], **relay_phase(gen, server, cfg, rate, cfg.seconds)}
    return points


def peers_curve(gen: GeneratorProc, server: ServerProc, cfg: argparse.Namespace) -> Points:
    pairs = cfg.measured_pairs
    connect(gen, cfg, 2 * pairs, "m")  # first, so that they are the relay's first pairs
    # One unmeasured phase, so the measured sockets' buffers are in the baseline RSS.
    relay_phase(gen, server, cfg, cfg.measured_rate, min(cfg.seconds, 1.0), pairs=pairs)
    time.sleep(cfg.settle)
    rss0 = server.rss_kb()
    idle = 0
    points: Points = {}
    for n in cfg.fitting_sizes:
        reply = connect(gen, cfg, n - idle, f"i{n}")
        idle = reply["connected"] - 2 * pairs  # the generator's count is of every pair it holds
        time.sleep(cfg.settle)  # let the server settle before reading its RSS
        rss = server.rss_kb()
        log(f"  {idle} idle peers: {pairs} pairs relay {cfg.measured_rate} msg/s for {cfg.seconds:g}s")
        figures = relay_phase(gen, server, cfg, cfg.measured_rate, cfg.seconds, pairs=pairs)
        log(f"  {idle} idle peers: call setups, {SETUP_CONCURRENCY} in flight, for {cfg.setup_seconds:g}s")
        setups = run_setups({"this": (server, gen)}, setup_config(cfg))["this"]
        points[str(n)] = {
            "idle_peers": idle,
            "connect_failed": reply["failed"],
            "rss_kb_total": rss,
            "rss_mb_total": rss / 1024,
            "rss_kb_per_peer": (rss - rss0) / max(idle, 1),
            **figures,
            **{f"setup_{name}": value for name, value in setups.items()},
        }
    return points


def setup_config(cfg: argparse.Namespace) -> argparse.Namespace:
    """What bench.run_setups reads: one slice of --setup-seconds."""
    return argparse.Namespace(
        setup_slices=1, setup_seconds=cfg.setup_seconds, setup_concurrency=SETUP_CONCURRENCY, size=cfg.size
    )


def roomsize_curve(gen: GeneratorProc, server: ServerProc, cfg: argparse.Namespace) -> Points:
    points: Points = {}
    for k in cfg.room_sizes:
        rooms = max(1, cfg.room_members // k)
        reply = gen.call(120 + rooms * k / 20, cmd="rooms", size=k, rooms=rooms, prefix=f"k{k}")
        if reply["failed"]:
            log(f"  {reply['failed']} of {rooms} rooms of {k} failed, e.g. {reply['failures'][:2]}")
        rate = cfg.copies_rate / (k - 1)
        log(f"  {reply['rooms']} rooms of {k}: {rate:.0f} broadcasts/s for {cfg.seconds:g}s")
        figures = relay_phase(gen, server, cfg, rate, cfg.seconds, broadcast=True)
        points[str(k)] = {"room_size": k, "rooms": reply["rooms"], "members": reply["connected"], **figures}
        gen.call(120 + rooms * k / 50, cmd="close")
    return points


RUNNERS: dict[str, Callable[[GeneratorProc, ServerProc, argparse.Namespace], Points]] = {
    "rate": rate_curve,
    "peers": peers_curve,
    "roomsize": roomsize_curve,
}


def run_curve(curve: str, kind: str, cfg: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    with (
        start_server(kind, cfg.ping_interval, workdir, cfg.service_loop) as server,
        start_generator(server.port) as gen,
    ):
        warm_up(gen, server)
        loop = server_loop(server)
        log(f"{curve}: {kind} ({loop})")
        points = RUNNERS[curve](gen, server, cfg)
    return {"loop": loop, "points": points}


# -- summary --


def medians(reps: list[dict[str, Any]]) -> Points:
    """Per point, the median over repeats of every number."""
    out: Points = {}
    for point in dict.fromkeys(p for rep in reps for p in rep["points"]):
        rows = [rep["points"][point] for rep in reps if point in rep["points"]]
        names = dict.fromkeys(k for row in rows for k, v in row.items() if isinstance(v, (int, float)))
        out[point] = {
            name: statistics.median(row[name] for row in rows if isinstance(row.get(name), (int, float)))
            for name in names
        }
    return out


# What each curve's table and plot show: (figure, column heading).
COLUMNS = {
    "rate": [
        ("cpu_s_per_10k", "CPU s/10k msgs"),
        ("server_cpu_util", "server CPU"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("max_ms", "max ms"),
        ("delivered_ratio", "delivered"),
        ("lost", "lost"),
        ("achieved_rate", "sent msg/s"),
        ("sender_lag_ms", "sender lag ms"),
        ("generator_cpu_util", "generator CPU"),
    ],
    "peers": [
        ("idle_peers", "idle connected"),
        ("cpu_s_per_10k", "CPU s/10k msgs"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("lost", "lost"),
        ("rss_mb_total", "RSS MB"),
        ("rss_kb_per_peer", "RSS KB/peer"),
        ("server_cpu_util", "server CPU"),
        ("setup_cpu_ms_per_setup", "CPU ms/setup"),
        ("setup_setups_per_s", "setups/s"),
        ("setup_failed", "setups failed"),
    ],
    "roomsize": [
        ("rooms", "rooms"),
        ("achieved_rate", "sent frames/s"),
        ("expected", "copies expected"),
        ("delivered_ratio", "delivered"),
        ("lost", "lost"),
        ("cpu_s_per_10k", "CPU s/10k copies"),
        ("p50_ms", "p50 ms"),
        ("p99_ms", "p99 ms"),
        ("server_cpu_util", "server CPU"),
    ],
}
X_HEADING = {"rate": "offered msg/s", "peers": "idle peers N", "roomsize": "room size k"}
TITLE = {
    "rate": "Rate to saturation",
    "peers": "Live peers",
    "roomsize": "Room size (broadcasts)",
}


COUNTS = {"lost", "rooms", "idle_peers", "expected", "setup_failed"}


def cell(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    if name.endswith(("_util", "_ratio")):
        return f"{value * 100:.0f}%"
    return f"{value:,.0f}" if name in COUNTS else fmt(value)


def markdown(result: dict[str, Any]) -> str:
    cfg = result["config"]
    lines = [
        f"Cost curves {result['started']}: {result['machine']['cpu']} x{result['machine']['cores']}, "
        f"repeats={cfg['repeats']} (medians), frames ~{cfg['size']} B SDP, phases {cfg['seconds']:g} s",
        "",
        f"`{result['command']}`",
    ]
    describe = {
        "rate": f"{cfg['rate_peers']} peers connected in pairs, ~1 KB offers at each offered rate.",
        "peers": f"{cfg['measured_pairs']} pairs relay {cfg['measured_rate']:g} msg/s beside N idle peers, "
        f"then {cfg['setup_seconds']:g} s of call setups ({SETUP_CONCURRENCY} in flight).",
        "roomsize": f"{cfg['room_members']} members in rooms of k, broadcasts at {cfg['copies_rate']:g} "
        "copies/s (sent frames/s = copies/s / (k-1)); CPU and latency per delivered copy.",
    }
    for curve, data in result["curves"].items():
        columns = COLUMNS[curve]
        lines += ["", f"### {TITLE[curve]}", "", describe[curve], ""]
        lines.append(f"| {X_HEADING[curve]} | server | " + " | ".join(h for _, h in columns) + " |")
        lines.append("| ---: | --- | " + " | ".join("---:" for _ in columns) + " |")
        for point in data["points"]:
            for kind, by_point in data["medians"].items():
                row = by_point.get(point, {})
                cells = [cell(k, row.get(k)) for k, _ in columns]
                lines.append(f"| {point} | {kind} | " + " | ".join(cells) + " |")
        for skipped in data.get("skipped", []):
            lines.append(f"\nSkipped N={skipped['n']}: {skipped['reason']}.")
    return "\n".join(lines) + "\n"


# -- plots --


def series(data: dict[str, Any], figure: str, scale: float = 1.0) -> list[plot.Series]:
    out = []
    for kind, by_point in data["medians"].items():
        colour, dash = STYLE.get(kind, ("", ""))
        points = [
            (float(p), v * scale if isinstance(v := by_point.get(p, {}).get(figure), (int, float)) else None)
            for p in data["points"]
        ]
        out.append(plot.Series(kind, points, colour, dash))
    return out


def plots(result: dict[str, Any]) -> dict[str, str]:
    """SVG text per curve, keyed by curve name."""
    curves, cfg = result["curves"], result["config"]
    reps = f"medians of {cfg['repeats']}"
    out: dict[str, str] = {}
    if "rate" in curves:
        data, x = curves["rate"], [float(p) for p in curves["rate"]["points"]]
        label = "offered rate (msg/s)"
        out["rate"] = plot.chart(
            [
                plot.Panel(series(data, "cpu_s_per_10k"), "server CPU s per 10k msgs", label, x_ticks=x),
                plot.Panel(series(data, "p99_ms"), "p99 latency (ms)", label, y_log=True, x_ticks=x),
                plot.Panel(series(data, "server_cpu_util", 100), "server CPU (%)", label, x_ticks=x),
            ],
            f"Rate to saturation: {cfg['rate_peers']} peers in pairs, ~1 KB offers ({reps})",
        )
    if "peers" in curves:
        data, x = curves["peers"], [float(p) for p in curves["peers"]["points"]]
        label = "idle peers connected (N)"
        out["peers"] = plot.chart(
            [
                plot.Panel(series(data, "cpu_s_per_10k"), "server CPU s per 10k msgs", label, x_ticks=x),
                plot.Panel(series(data, "p99_ms"), "p99 latency (ms)", label, y_log=True, x_ticks=x),
                plot.Panel(series(data, "rss_mb_total"), "server RSS (MB)", label, x_ticks=x),
                plot.Panel(series(data, "setup_cpu_ms_per_setup"), "server CPU ms per call setup", label, x_ticks=x),
            ],
            f"Live peers: {cfg['measured_pairs']} pairs relay {cfg['measured_rate']:g} msg/s beside N idle, "
            f"then call setups ({reps})",
        )
    if "roomsize" in curves:
        data, x = curves["roomsize"], [float(p) for p in curves["roomsize"]["points"]]
        label = "room size k (members)"
        out["roomsize"] = plot.chart(
            [
                plot.Panel(series(data, "cpu_s_per_10k"), "CPU s per 10k copies", label, x_log=True, x_ticks=x),
                plot.Panel(series(data, "p99_ms"), "p99 per copy (ms)", label, x_log=True, y_log=True, x_ticks=x),
            ],
            f"Room size: broadcasts to k-1 members, {cfg['copies_rate']:g} copies/s ({reps})",
        )
    return out


# -- command line --


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Cost curves: the service against the floor as the load grows.")
    p.add_argument("--quick", action="store_true", help="1 repeat, ~100 peers, 1 s phases (about a minute), for CI")
    p.add_argument("--out", type=Path, default=Path("curves.json"), help="JSON result; the SVGs go beside it")
    p.add_argument("--md", type=Path, help="markdown tables (default: --out with .md)")
    p.add_argument("--curves", default=",".join(CURVES), help=f"which curves (default: {','.join(CURVES)})")
    p.add_argument("--repeats", type=int, help="runs per server and curve; figures are medians (default 3)")
    p.add_argument("--seconds", type=float, help="seconds of each measured relay phase (default 6)")
    p.add_argument("--rates", help="rate curve: offered msg/s (default 1000,2000,4000,6000,8000,10000,12000)")
    p.add_argument("--rate-peers", type=int, help="rate curve: peers connected, in pairs (default 2000)")
    p.add_argument("--peer-sizes", help="peers curve: idle peers N (default 1000,5000,10000,19000)")
    p.add_argument("--measured-pairs", type=int, help="peers curve: pairs that relay (default 50)")
    p.add_argument("--measured-rate", type=float, help="peers curve: their msg/s (default 1000)")
    p.add_argument("--setup-seconds", type=float, help="peers curve: seconds of call setups at each N (default 5)")
    p.add_argument("--room-sizes", help="room-size curve: members per room k (default 2,4,8,16)")
    p.add_argument("--room-members", type=int, help="room-size curve: members in all, ~ rooms x k (default 256)")
    p.add_argument("--copies-rate", type=float, help="room-size curve: delivered copies/s (default 2000)")
    p.add_argument("--size", type=int, default=1024, help="bytes of SDP per frame (default 1024)")
    p.add_argument("--drain", type=float, help="seconds to wait for stragglers after a phase (default 15)")
    p.add_argument("--settle", type=float, help="seconds before reading RSS (default 1)")
    p.add_argument("--connect-concurrency", type=int, default=100, help="connects in flight (default 100)")
    p.add_argument("--floors", default="asyncio,uvloop", help="loops to run the floor on (default: both)")
    p.add_argument("--service-loop", default="auto", choices=("auto", "asyncio", "uvloop"), help="the service's --loop")
    p.add_argument("--ping-interval", type=float, default=0.0, help="WebSocket pings of both servers (default 0: off)")
    args = p.parse_args(argv)
    quick = args.quick
    args.curves = [c.strip() for c in args.curves.split(",") if c.strip()]
    if not args.curves or not set(args.curves) <= set(CURVES):
        p.error(f"--curves: choose from {','.join(CURVES)}")
    args.repeats = args.repeats or (1 if quick else 3)
    args.seconds = args.seconds or (1.0 if quick else 6.0)
    args.rates = ints(args.rates or ("200,400" if quick else "1000,2000,4000,6000,8000,10000,12000"))
    args.rate_peers = args.rate_peers or (100 if quick else 2000)
    args.peer_sizes = ints(args.peer_sizes or ("100,200" if quick else "1000,5000,10000,19000"))
    args.measured_pairs = args.measured_pairs or (10 if quick else 50)
    args.measured_rate = args.measured_rate or (200.0 if quick else 1000.0)
    args.setup_seconds = args.setup_seconds or (1.0 if quick else 5.0)
    args.room_sizes = sorted(ints(args.room_sizes or ("2,4" if quick else "2,4,8,16")))
    args.room_members = args.room_members or (32 if quick else 256)
    args.copies_rate = args.copies_rate or (200.0 if quick else 2000.0)
    args.drain = args.drain if args.drain is not None else (3.0 if quick else 15.0)
    args.settle = args.settle if args.settle is not None else (0.3 if quick else 1.0)
    args.md = args.md or args.out.with_suffix(".md")
    if min(args.room_sizes) < 2:
        p.error("--room-sizes: a room needs at least 2 members")
    if min(args.peer_sizes) < 0 or min(args.rates) <= 0:
        p.error("--peer-sizes and --rates must be positive")
    floors = {f.strip() for f in args.floors.split(",") if f.strip()} | {"asyncio"}
    if not floors <= set(FLOOR_KINDS):
        p.error(f"--floors: unknown loop in {args.floors!r} (asyncio, uvloop)")
    args.servers = [FLOOR_KINDS[f] for f in ("asyncio", "uvloop") if f in floors] + ["service"]
    return args


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    cap = files_cap()
    cfg.fitting_sizes, skipped = split_sizes(cfg.peer_sizes, cfg.measured_pairs, cap)
    for s in skipped:
        log(f"peers: skipping N={s['n']}: {s['reason']}")
    if "peers" in cfg.curves and not cfg.fitting_sizes:
        raise SystemExit("curves: no --peer-sizes fit the open-files limit")
    room_peers = max(cfg.room_members // k * k for k in cfg.room_sizes)
    wanted = max([cfg.rate_peers, room_peers] + [files_needed(n, cfg.measured_pairs) for n in cfg.fitting_sizes])
    limit = raise_fd_limit(wanted + SPARE_FILES)  # inherited by the servers and generators
    if limit < wanted:
        raise SystemExit(f"curves: open-files limit {limit} is below the {wanted} this run needs")
    # SIGTERM unwinds through the finally blocks, so no server or generator outlives the run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {c: {k: [] for k in cfg.servers} for c in cfg.curves}
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="curves-") as tmp:
        turn = 0
        for rep in range(cfg.repeats):
            for curve in cfg.curves:
                # Interleaved: the servers take turns on each curve, in alternating order.
                order = cfg.servers if turn % 2 == 0 else cfg.servers[::-1]
                turn += 1
                for kind in order:
                    log(f"repeat {rep + 1}/{cfg.repeats}: {curve}, {kind}")
                    runs[curve][kind].append(run_curve(curve, kind, cfg, Path(tmp)))
    x_of = {"rate": cfg.rates, "peers": cfg.fitting_sizes, "roomsize": cfg.room_sizes}
    curves: dict[str, dict[str, Any]] = {}
    for curve in cfg.curves:
        curves[curve] = {
            "x": X_HEADING[curve],
            "points": [str(x) for x in x_of[curve]],
            "medians": {kind: medians(reps) for kind, reps in runs[curve].items()},
            "runs": runs[curve],
        }
    if "peers" in curves:
        curves["peers"]["skipped"] = skipped
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}
    result: dict[str, Any] = {
        "started": started,
        "seconds": time.monotonic() - t0,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {**machine(), "open_files_limit": cap},
        "config": config,
        "curves": curves,
    }
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(result, indent=1) + "\n")
    written = [cfg.out, cfg.md]
    for curve, svg in plots(result).items():
        path = cfg.out.with_name(f"curves-{curve}.svg")
        path.write_text(svg)
        written.append(path)
    table = markdown(result)
    cfg.md.write_text(table)
    print(table)
    log(f"done in {result['seconds']:.0f}s: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
