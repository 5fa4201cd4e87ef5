"""CI smoke for the locust suite: a real server, locust headless for ~20 s, zero failures.

The run mixes all three scenarios (call-setup churn, steady relay, idle holders) with
tens of users; the test fails on a non-zero exit, on any failed request in the CSV
stats, on any exception in the users' code, or if a scenario never ran.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from loadtests import wire
from tests.support import scaled, server_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
RUN_SECONDS = 20
# Every locust user dials from 127.0.0.1: lift the per-IP limits meant for the internet.
LOAD_TEST_LIMITS = wire.as_env(wire.LIFTED_PER_ADDRESS)
EXPECTED_STEPS = {
    "POST /rooms/[id]/join",
    "connect",
    "peer-joined",
    "offer->answer",
    "ice 10+10",
    "leave",
    "relay 1KB",
    "idle ping",
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def run_locust(port: int, csv_prefix: Path) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        "30",
        "-r",
        "15",
        "-t",
        f"{RUN_SECONDS}s",
        "--stop-timeout",
        "5",
        "--host",
        f"http://127.0.0.1:{port}",
        "--csv",
        str(csv_prefix),
        "--only-summary",
    ]
    env = {**os.environ, "LOCUST_IDLE_PING": "2", "LOCUST_RELAY_RATE": "5"}
    # A session of its own, so the whole locust process tree can be killed if it hangs.
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=scaled(RUN_SECONDS + 40))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"locust did not finish in time:\n{out[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(cmd, proc.returncode, out, None)


def test_locust_runs_every_scenario_against_a_real_server_without_a_single_failure(tmp_path: Path) -> None:
    with server_process(env=LOAD_TEST_LIMITS) as server:
        result = run_locust(server.port, tmp_path / "run")
        assert server.proc.poll() is None, "the server died under load:\n" + "".join(server.log[-50:])

    tail = result.stdout[-4000:]
    assert result.returncode == 0, f"locust exited {result.returncode}:\n{tail}"
    stats = read_csv(tmp_path / "run_stats.csv")
    failures = read_csv(tmp_path / "run_failures.csv")
    exceptions = read_csv(tmp_path / "run_exceptions.csv")
    assert not failures, f"locust failures: {failures}\n{tail}"
    assert not exceptions, f"exceptions in the locust users: {exceptions}\n{tail}"
    by_name = {row["Name"]: row for row in stats}
    total = by_name["Aggregated"]
    assert int(total["Failure Count"]) == 0, tail
    ran = {name for name, row in by_name.items() if name != "Aggregated" and int(row["Request Count"]) > 0}
    assert EXPECTED_STEPS <= ran, f"steps that never ran: {EXPECTED_STEPS - ran}\n{tail}"
