"""CI check of the benchmark harness: ``bench.py --quick`` runs end to end.

No timing assertions (CI machines are shared and noisy): only that every figure is
there for both servers, with its ratio, that relayed frames were counted, and that the
run left no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import scaled

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "loadtests" / "bench.py"
FIGURES = {
    "connect": {"connected", "failed", "rss_kb_per_conn", "cpu_ms_per_conn"},
    "relay": {"delivered_ratio", "lost", "p50_ms", "p99_ms", "cpu_s_per_10k"},
    "setups": {"setups_per_s", "failed", "cpu_ms_per_setup", "p99_setup_ms"},
}


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """loadtests/bench.py as a module (it imports its siblings from its own folder)."""
    sys.path.insert(0, str(BENCH.parent))
    import bench as module

    return module


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    # Its own session, so the bench, its servers and its generators can all be killed at once.
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=scaled(240))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"bench --quick did not finish:\n{output[-4000:]}")
    leftover = group_alive(proc.pid)
    if leftover:
        os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-4000:]
    assert not leftover, "bench.py left servers or generators running"
    result = json.loads(out.read_text())
    result["_markdown"] = out.with_suffix(".md").read_text()
    return result


def test_quick_bench_reports_every_figure_for_both_servers_with_ratios(quick_run: dict) -> None:
    summary = quick_run["summary"]
    config = quick_run["config"]
    groups = [f"connect_{n}" for n in config["peers"]] + [f"relay_{r}" for r in config["rates"]] + ["setups"]
    for group in groups:
        wanted = FIGURES[group.split("_")[0]]
        for name in wanted:
            key = f"{group}.{name}"
            for server in ("floor", "floor-uvloop", "service"):
                assert summary[server].get(key) is not None, f"{server} lacks {key}"
            assert key in summary["ratio"] and key in summary["ratio_uvloop"], f"no ratio for {key}"
    assert set(summary["service"]) == set(summary["floor"]) == set(summary["floor-uvloop"]) == set(summary["ratio"])
    # Ratios exist wherever the floor's figure is non-zero.
    for key, floor in summary["floor"].items():
        if floor:
            assert summary["ratio"][key] is not None, key


def test_quick_bench_counts_relayed_frames_and_completed_work(quick_run: dict) -> None:
    summary = quick_run["summary"]
    for server in ("floor", "floor-uvloop", "service"):
        for rate in quick_run["config"]["rates"]:
            ratio = summary[server][f"relay_{rate}.delivered_ratio"]
            assert 0 < ratio <= 1, (server, rate, ratio)
        for n in quick_run["config"]["peers"]:
            assert summary[server][f"connect_{n}.connected"] > 0
        assert summary[server]["setups.setups_per_s"] > 0


def test_quick_bench_writes_a_markdown_table_and_checks_the_targets(quick_run: dict) -> None:
    table = quick_run["_markdown"]
    assert "| figure | floor | floor-uvloop | service | service/floor | service/floor-uvloop |" in table
    assert {t["target"].split(" at ")[0] for t in quick_run["targets"]} >= {
        "CPU per relayed message",
        "CPU per relayed message, uvloop floor",
        "CPU per call setup",
        "call setups per second",
        "RSS per connection",
        "lost messages",
    }
    assert quick_run["machine"]["cores"] >= 1


def test_quick_bench_runs_the_floor_on_both_loops_and_the_service_on_uvloop(quick_run: dict) -> None:
    # Each server logs its event loop; the bench records what it read there.
    loops = {kind: {run["server"]["loop"] for run in runs} for kind, runs in quick_run["runs"].items()}
    assert loops == {"floor": {"asyncio"}, "floor-uvloop": {"uvloop"}, "service": {"uvloop"}}


def test_targets_are_issue_12s_and_setups_per_second_must_reach_the_floor(bench: ModuleType) -> None:
    cfg = bench.parse_args(["--peers", "100", "--rates", "100,500"])
    service = {"connect_100.rss_kb_per_conn": 15.0, "relay_100.p99_ms": 6.0, "relay_100.lost": 0, "relay_500.lost": 0}
    ratio = {"relay_100.cpu_s_per_10k": 0.99, "relay_500.cpu_s_per_10k": 1.01}
    ratio |= {"setups.cpu_ms_per_setup": 1.0, "setups.setups_per_s": 0.95}
    uvloop = {"relay_100.cpu_s_per_10k": 1.2, "relay_500.cpu_s_per_10k": 1.3}
    summary = {"service": service, "ratio": ratio, "ratio_uvloop": uvloop}
    met = {t["target"]: t["met"] for t in bench.check_targets(summary, cfg)}  # type: ignore[arg-type]
    assert met == {
        "CPU per relayed message at 100 msg/s": True,
        "CPU per relayed message at 500 msg/s": False,
        "CPU per relayed message, uvloop floor at 100 msg/s": True,
        "CPU per relayed message, uvloop floor at 500 msg/s": False,
        "CPU per call setup": True,
        "call setups per second": False,  # at least the floor's
        "RSS per connection at 100 peers": True,
        "p99 latency at 100 msg/s, 100 peers": False,
        "lost messages": True,
    }


class FakeServer:
    """A server process as run_setups sees it: its CPU clock and its liveness."""

    def __init__(self, cpu_per_slice: float) -> None:
        self.cpu = 0.0
        self.cpu_per_slice = cpu_per_slice

    def cpu_seconds(self) -> float:
        return self.cpu

    def check_alive(self) -> None:
        pass


class FakeGenerator:
    """Answers a ``setups`` command at once with ``setups`` completed, and logs the slice."""

    def __init__(self, kind: str, server: FakeServer, setups: int, order: list[tuple[str, float]]) -> None:
        self.kind, self.server, self.setups, self.order = kind, server, setups, order

    def call(self, timeout: float, **command: object) -> dict[str, object]:
        assert command["cmd"] == "setups"
        self.order.append((self.kind, float(command["seconds"])))  # type: ignore[arg-type]
        self.server.cpu += self.server.cpu_per_slice
        times = [float(i) for i in range(self.setups)]
        return {"setups": self.setups, "failed": 0, "failures": [], "generator_cpu_s": 0.1, "times_ms": times}


def test_call_setups_alternate_between_the_servers_in_slices_and_sum_them(bench: ModuleType) -> None:
    # The machine's speed drifts over minutes: a server's setups must not all run in
    # one stretch and another's in the next, or the drift lands on one of them.
    cfg = bench.parse_args(["--setup-seconds", "6", "--setup-slices", "3"])
    order: list[tuple[str, float]] = []
    servers = {}
    for kind, cpu, setups in (("floor", 0.2, 100), ("service", 0.3, 100)):
        server = FakeServer(cpu)
        servers[kind] = (server, FakeGenerator(kind, server, setups, order))
    figures = bench.run_setups(servers, cfg)  # type: ignore[arg-type]
    assert [kind for kind, _ in order] == ["floor", "service", "service", "floor", "floor", "service"]
    assert {seconds for _, seconds in order} == {2.0}
    assert figures["floor"]["cpu_ms_per_setup"] == pytest.approx(2.0)  # 3 x 0.2 s over 300 setups
    assert figures["service"]["cpu_ms_per_setup"] == pytest.approx(3.0)
    # From the merged times of all slices (each slice's 0..99 ms three times over).
    assert figures["service"]["p99_setup_ms"] == 98.0


def test_relay_slices_merge_into_one_figure_over_every_frame(bench: ModuleType) -> None:
    def part(delivered: int, cpu: float, latencies: list[float], lag: float) -> dict[str, object]:
        counts = {"sent": delivered, "expected": delivered, "delivered": delivered, "lost": 0, "duplicates": 0}
        counts |= {"misrouted": 0, "late_from_earlier": 1, "error_frames": 0, "max_ms": max(latencies)}
        counts |= {"offered_rate": 1000, "sender_lag_ms": lag, "frame_bytes": 1125}
        raw = {"cpu": cpu, "wall": 1.0, "generator_cpu": 0.5, "send_seconds": 1.0, "latencies_ms": latencies}
        return counts | {"_raw": raw}

    merged = bench.merge_relays([part(1000, 0.2, [1.0] * 99 + [50.0], 3.0), part(3000, 0.4, [2.0] * 100, 1.0)])
    assert merged["delivered"] == 4000 and merged["late_from_earlier"] == 2 and merged["delivered_ratio"] == 1.0
    assert merged["cpu_s_per_10k"] == pytest.approx(1.5)  # 0.6 s of CPU over 4,000 frames
    assert merged["server_cpu_util"] == pytest.approx(0.3) and merged["achieved_rate"] == pytest.approx(2000)
    assert merged["p50_ms"] == 2.0 and merged["max_ms"] == 50.0 and merged["sender_lag_ms"] == 3.0
    assert "_raw" not in merged
