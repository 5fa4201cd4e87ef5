"""The soak test, short: a minute of call-setup churn against a real server process.

soak.py starts ``python -m transport.server`` itself, drives clean leaves, abrupt
drops and reconnects within the grace at a modest fixed rate, and fails on growth
(RSS, cyclic garbage) or on anything not back to its baseline afterwards. No timing
assertions: the rate is modest so a shared CI machine sustains it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import scaled

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SOAK = ROOT / "loadtests" / "soak.py"


@pytest.mark.timeout(scaled(240))  # a minute of load, the settling, and a busy machine
def test_a_minute_of_call_setup_churn_leaves_memory_flat_and_everything_back_to_baseline(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    # A short grace so dropped seats expire, and the rooms settle, soon after the load.
    cmd = [
        sys.executable,
        str(SOAK),
        "--rate",
        "20",
        "--duration",
        "60",
        "--warmup",
        "20",
        "--interval",
        "2",
        "--grace",
        "2",
        "--settle",
        str(scaled(30)),
        "--out",
        str(out),
    ]
    # Its own session, so soak.py and the server it started can be killed together.
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        output, _ = proc.communicate(timeout=scaled(200))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"soak.py did not finish:\n{output[-4000:]}")
    assert out.exists(), output[-4000:]
    result = json.loads(out.read_text())
    failed = {name: check["detail"] for name, check in result["checks"].items() if not check["ok"]}
    assert not failed, f"soak failed: {failed}\n{output[-3000:]}"
    assert proc.returncode == 0, output[-3000:]
    summary = result["summary"]
    assert min(summary["by_kind"].values()) > 0, summary  # every kind of scenario ran
    assert out.with_suffix(".svg").read_text().startswith("<svg")
    assert "no_traceback_in_server_log" in result["checks"]
