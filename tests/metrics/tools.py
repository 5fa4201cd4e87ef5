"""Shared by the observability tests: the Prometheus binaries, traffic, scraping."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import connect, fetch, http, join, scaled
from transport.server import Server

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"

T = TypeVar("T")


def binary(name: str) -> str:
    """Path of a Prometheus tool; skipped when missing on a laptop, a failure in CI."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{name} is not installed; CI must have it (.ci/run installs Debian's prometheus package)")
    pytest.skip(f"{name} is not installed (apt-get install prometheus); in CI (CI=true) this fails instead")


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], input=stdin, capture_output=True, text=True, timeout=scaled(30), cwd=cwd
    )


def free_port() -> int:
    # The port is free when we return; Prometheus binds it a moment later.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something other than None (or fail after ``timeout``).

    For conditions another process decides (Prometheus scrapes on its own clock), where
    there is nothing to await: the poll interval is not a synchronization, the deadline is.
    """
    deadline = time.monotonic() + scaled(timeout)
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last is not None:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {scaled(timeout):.1f}s waiting for {what}")


async def scrape(server: Server, accept: str = "") -> tuple[str, str]:
    """GET /metrics on the metrics port: (content type, body)."""
    headers = {"Accept": accept} if accept else {}
    response = await fetch(server, "GET", "/metrics", port=server.metrics_port, **headers)
    assert response.code == 200
    return response.headers["Content-Type"], response.body.decode()


def sample_names(exposition: str) -> set[str]:
    """Every series name in a text exposition (histograms give _bucket, _sum, _count)."""
    return {s.name for family in text_string_to_metric_families(exposition) for s in family.samples}


async def traffic(server: Any) -> None:
    """Drive most of the service's outcomes through real REST and WebSocket clients.

    A new room each call (carol's REST stub outlives the call and keeps its room open).
    """
    room = f"obs-{uuid.uuid4().hex[:8]}"
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": room, "clientId": "carol"})
    assert status == 200  # a stub: frames for carol are held
    status, _ = await http(server, "POST", "/rooms/join", raw=b"not json")
    assert status == 400
    a, _ = await join(server, room, "alice")
    b, _ = await join(server, room, "bob")
    await a.recv_type("peer-joined")
    a.signal("offer", to="bob")
    await b.recv_type("offer")
    b.signal("answer", to="alice")  # completes a call setup
    await a.recv_type("answer")
    a.signal("ice-candidate")  # to every connected member
    await b.recv_type("ice-candidate")
    a.signal("offer", to="carol")  # held
    a.signal("offer", to="nobody")  # rejected: unknown-peer
    await a.recv_type("error")
    a.send("{not json")  # frame error: invalid-json
    await a.recv_type("error")
    duplicate = await connect(server, room, "alice")  # refused: client-id-taken, closed 4409
    assert (await duplicate.closed())[0] == 4409
    a.close()
    await b.recv_type("peer-left")
    b.close()
