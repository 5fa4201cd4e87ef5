"""A real coturn (Debian's ``turnserver``) on 127.0.0.1 for the TURN tests, always killed.

It runs in coturn's TURN REST API mode (``use-auth-secret`` + ``static-auth-secret``),
UDP and TCP only (no TLS/DTLS), without its CLI, web admin or Prometheus listener,
with its SQLite file, pid file and nothing else in a temporary directory. Its log
goes to stdout, read by a thread for the whole run (``--verbose``: one line per
processed request, with the username and the outcome, e.g. ``error 401``), so the
tests can wait for a line instead of sleeping.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import scaled


def binary(name: str) -> str:
    """Path of a coturn tool; skipped when missing on a laptop, a failure in CI."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{name} is not installed; CI must have it (.ci/run installs Debian's coturn package)")
    pytest.skip(f"{name} is not installed (apt-get install coturn); in CI (CI=true) this fails instead")


def free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 now; coturn binds both a moment later."""
    for _ in range(20):
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP")


@dataclass
class Coturn:
    port: int
    secret: str
    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def wait_for_line(self, match: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        """The first log line that ``match``es, waiting for it up to ``scaled(timeout)``."""
        found: list[str] = []

        def seen() -> bool:
            found[:] = [line for line in self.lines if match(line)]
            return bool(found) or self.proc.poll() is not None

        with self.changed:
            self.changed.wait_for(seen, scaled(timeout))
        assert found, f"coturn never logged {what}; its log:\n{''.join(self.lines[-40:])}"
        return found[0]

    def request_lines(self, username: str) -> list[str]:
        """The lines coturn logged for requests authenticated as (or refused for) ``username``."""
        return [line for line in self.lines if f"user <{username}>:" in line]


@contextmanager
def running_coturn(workdir: Path, secret: str) -> Iterator[Coturn]:
    port = free_udp_and_tcp_port()
    cmd = [
        binary("turnserver"),
        "-n",  # -n: no configuration file, only these flags
        "--listening-ip",
        "127.0.0.1",
        "--relay-ip",
        "127.0.0.1",
        "--listening-port",
        str(port),
        "--use-auth-secret",
        "--static-auth-secret",
        secret,
        "--realm",
        "signaling.test",
        "--no-tls",
        "--no-dtls",
        "--no-cli",
        "--no-rfc5780",
        "--no-software-attribute",
        "--db",
        str(workdir / "turndb"),
        "--pidfile",
        str(workdir / "turnserver.pid"),
        "--log-file",
        "stdout",
        "--simple-log",
        "--verbose",
        # The peers of these tests are on 127.0.0.1 too: coturn refuses loopback peers
        # unless told otherwise (never do this in production).
        "--allow-loopback-peers",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, cwd=workdir
    )
    coturn = Coturn(port, secret, proc)

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with coturn.changed:
                coturn.lines.append(line)
                coturn.changed.notify_all()
        with coturn.changed:
            coturn.changed.notify_all()

    reader = threading.Thread(target=drain, name="coturn log", daemon=True)
    reader.start()
    try:
        coturn.wait_for_line(
            lambda line: f"UDP listener opened on: 127.0.0.1:{port}" in line, "its UDP listener", timeout=15
        )
        coturn.wait_for_line(
            lambda line: f"TCP listener opened on : 127.0.0.1:{port}" in line, "its TCP listener", timeout=15
        )
        yield coturn
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=scaled(10))
        reader.join(timeout=scaled(5))


@dataclass
class Allocation:
    returncode: int
    output: str


def uclient(coturn: Coturn, username: str, credential: str) -> Allocation:
    """``turnutils_uclient``: allocate two relays (client to client, -y), bind channels, send a message.

    It exits 0 when every allocation and message went through, non-zero otherwise
    (it prints no STUN error code: the 401 is read from coturn's log).
    """
    cmd = [
        binary("turnutils_uclient"),
        "-v",
        "-y",
        "-c",
        "-n",
        "1",
        "-m",
        "1",
        "-u",
        username,
        "-w",
        credential,
        "-p",
        str(coturn.port),
        "127.0.0.1",
    ]
    done = subprocess.run(
        cmd, check=False, capture_output=True, text=True, timeout=scaled(60), stdin=subprocess.DEVNULL
    )
    return Allocation(done.returncode, done.stdout + done.stderr)
