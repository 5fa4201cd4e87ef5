"""The service as operators run it: a real process, signals, logs, start-up errors."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.support import http, join, scaled, server_process
from transport.server import loop_factory, loop_name


def test_a_bad_setting_stops_the_start_with_one_line_naming_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "transport.server", "--port", "http"], capture_output=True, text=True, timeout=scaled(30)
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "signaling-server: invalid setting: --port='http': expected an integer"
    ]


def test_the_console_script_is_installed() -> None:
    result = subprocess.run(["signaling-server", "--help"], capture_output=True, text=True, timeout=scaled(30))
    assert result.returncode == 0 and "SIGNALING_" in result.stdout


def test_the_ready_file_names_the_bound_ports_and_goes_on_sigterm() -> None:
    with server_process() as proc:
        assert proc.ready_file is not None
        ready = json.loads(proc.ready_file.read_text())
        assert ready == {"port": proc.port, "metrics_port": proc.metrics_port, "pid": proc.proc.pid}
        assert proc.port and proc.metrics_port and proc.port != proc.metrics_port
        assert "listening on" in "".join(proc.log)  # the human line stays, for people
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(scaled(10)) == 0
        assert not proc.ready_file.exists()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_the_server_relays_on_either_event_loop_and_logs_which_one(loop: str) -> None:
    with server_process("--loop", loop) as proc:
        a, _ = await join(proc, "loops", "a")
        b, _ = await join(proc, "loops", "b")
        a.signal("offer", to="b")
        assert (await b.recv_type("offer"))["from"] == "a"
    assert f"event loop: {loop}" in "".join(proc.log)


def test_the_default_loop_is_uvloop_where_it_is_installed() -> None:
    # uvloop is a dependency on Linux and macOS (setup.cfg): ``auto`` must pick it up.
    factory = loop_factory("auto")
    assert factory is not None
    loop = factory()
    try:
        assert loop_name(loop) == "uvloop"
    finally:
        loop.close()
    assert loop_factory("asyncio") is None  # asyncio's own default loop


async def test_sigterm_closes_every_socket_with_1001_and_exits_0_within_10_seconds() -> None:
    with server_process("--drain-seconds", "0.5") as proc:
        a, _ = await join(proc, "r1", "a")
        b, _ = await join(proc, "r2", "b")
        started = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert (await a.closed(timeout=10))[0] == 1001
        assert (await b.closed(timeout=10))[0] == 1001
        assert await asyncio.to_thread(proc.proc.wait, scaled(10)) == 0
        assert time.monotonic() - started < 10
    log = "".join(proc.log)
    assert "signal received: draining" in log and "stopped" in log and "Traceback" not in log


async def test_logs_name_rooms_and_clients_but_never_sdp_or_candidate_text() -> None:
    with server_process("--log-level", "DEBUG") as proc:
        a, _ = await join(proc, "logroom", "alice")
        b, _ = await join(proc, "logroom", "bob")
        a.signal("offer", to="bob", data={"type": "offer", "sdp": "v=0 SECRET-SDP-MARKER 203.0.113.7"})
        a.signal("ice-candidate", to="bob", data={"candidate": "candidate:SECRET-CANDIDATE-MARKER 198.51.100.9"})
        await b.recv_type("offer")
        await b.recv_type("ice-candidate")
        a.close()
        await b.recv_type("peer-left")
        b.close()
        assert (await http(proc, "GET", "/healthz"))[0] == 200
        proc.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.proc.wait, scaled(10))
    log = "".join(proc.log)
    assert "peer connected" in log and "room=logroom" in log and "client=alice" in log
    assert "relay offer alice -> bob" in log  # per-message lines exist at DEBUG...
    for secret in ("SECRET-SDP-MARKER", "SECRET-CANDIDATE-MARKER", "203.0.113.7", "198.51.100.9"):
        assert secret not in log  # ...but never carry the payload
