"""Cluster-mode figures (docs/cluster.md, docs/performance.md), with bench.py's generator.

    python loadtests/cluster_bench.py --out cluster-bench.json

Starts a redis-server, cluster backends (``--redis``) and nginx with the shipped site
config, all on 127.0.0.1, and measures:

- relay through nginx with 1 and with 2 backends: for each rate, delivered ratio,
  p50/p99 latency, the backends' CPU seconds per 10k messages (from /proc), and the
  share of frames that crossed Redis (nginx hashes on the room id: expected 0);
- the extra latency of a frame whose two clients are on different backends (it
  crosses Redis once: the socket's backend -> the owner, or the owner -> the
  socket's backend) against one whose clients share a backend, at a fixed rate,
  without nginx.

The generator runs on the same machine: on 2 cores it competes with the backends, so
the 2-backend throughput is bounded by the cores left, not by the service.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import (  # type: ignore[import-not-found]
    SERVICE_ENV,
    GeneratorProc,
    ServerProc,
    log,
    raise_fd_limit,
)
from launch import launch, nginx, redis_server

SECRET = "cluster-bench-secret-0123456789abcdef"


@contextmanager
def backend(redis_url: str, workdir: Path, port: int = 0) -> Iterator[ServerProc]:
    args = ["--ping-interval", "0", "--redis", redis_url, "--secret", SECRET, "--trust-proxy"]
    if port:
        args += ["--port", str(port)]
    with launch(*args, env=SERVICE_ENV, log_path=workdir / f"backend-{time.monotonic_ns()}.log", timeout=20) as server:
        yield server


def metric_sum(server: ServerProc, prefix: str) -> float:
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def relay(gen: GeneratorProc, servers: list[ServerProc], rate: int, cfg: argparse.Namespace) -> dict[str, Any]:
    cpu0 = sum(s.cpu_seconds() for s in servers)
    crossed0 = sum(metric_sum(s, 'signaling_cluster_frames_total{direction="sent"}') for s in servers)
    result = gen.call(cfg.seconds * 3 + 60, cmd="relay", rate=rate, seconds=cfg.seconds, size=1024, drain=5)
    cpu = sum(s.cpu_seconds() for s in servers) - cpu0
    crossed = sum(metric_sum(s, 'signaling_cluster_frames_total{direction="sent"}') for s in servers) - crossed0
    for s in servers:
        s.check_alive()
    figures = {
        k: result[k] for k in ("sent", "received", "duplicates", "delivered_ratio", "achieved_rate", "p50_ms", "p99_ms")
    }
    figures["server_cpu_s_per_10k"] = cpu / max(result["received"], 1) * 10_000
    figures["crossed_redis_share"] = crossed / max(result["sent"], 1)
    figures["generator_cpu_s"] = result["generator_cpu_s"]
    log(f"  rate {rate}: {json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()})}")
    return figures


def through_nginx(count: int, redis_url: str, workdir: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    log(f"{count} backend(s) behind nginx")
    with ExitStack() as stack:
        servers = [stack.enter_context(backend(redis_url, workdir)) for _ in range(count)]
        proxy = stack.enter_context(nginx([s.port for s in servers], workdir, worker_connections=8192))
        gen = stack.enter_context(generator(proxy.port))
        gen.call(120, cmd="connect", n=cfg.peers, concurrency=100, prefix=f"n{count}", secret=SECRET)
        gen.call(60, cmd="relay", rate=1000, seconds=1, size=1024, drain=5)  # warm-up
        return {str(rate): relay(gen, servers, rate, cfg) for rate in cfg.rates}


def across_backends(redis_url: str, workdir: Path, cfg: argparse.Namespace) -> dict[str, Any]:
    log("latency: both clients on one backend vs on two")
    out: dict[str, Any] = {}
    with ExitStack() as stack:
        one, two = (stack.enter_context(backend(redis_url, workdir)) for _ in range(2))
        for name, b_port in (("same-backend", 0), ("cross-backend", two.port)):
            with generator(one.port) as gen:
                gen.call(120, cmd="connect", n=cfg.peers, concurrency=100, prefix=name, secret=SECRET, b_port=b_port)
                gen.call(60, cmd="relay", rate=500, seconds=1, size=1024, drain=5)  # warm-up
                out[name] = relay(gen, [one, two], cfg.latency_rate, cfg)
    return out


@contextmanager
def generator(port: int) -> Iterator[GeneratorProc]:
    gen = GeneratorProc(port)
    try:
        yield gen
    finally:
        gen.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("cluster-bench.json"))
    parser.add_argument("--peers", type=int, default=1000, help="WebSockets (two per room; default 1000)")
    parser.add_argument("--rates", default="2000,4000,6000,8000", help="relay rates in msg/s, through nginx")
    parser.add_argument("--latency-rate", type=int, default=1000, help="msg/s of the latency comparison")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per relay phase")
    parser.add_argument("--parts", default="latency,nginx", help="which measurements (default: both)")
    cfg = parser.parse_args(argv)
    cfg.rates = [int(r) for r in cfg.rates.split(",")]
    raise_fd_limit(4 * cfg.peers + 1000)
    result: dict[str, Any] = {"peers": cfg.peers, "seconds": cfg.seconds}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        workdir = Path(tmp)
        with redis_server(workdir) as redis_url:
            if "latency" in cfg.parts:
                result["latency"] = across_backends(redis_url, workdir, cfg)
            if "nginx" in cfg.parts:
                result["nginx"] = {str(n): through_nginx(n, redis_url, workdir, cfg) for n in (1, 2)}
    cfg.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
