"""Cluster mode end to end: real redis-server, real backend processes, real WebSocket clients.

Clients connect to chosen backends directly, so a call's two clients are deliberately
on different backends and every frame between them crosses Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest

from actors.errors import CLOSE_ROOM_MOVED
from tests.cluster.conftest import SECRET, RedisServer
from tests.support import Client, Closed, ServerProcess, http, join, sample_data, scaled, server_process
from transport.tokens import TokenIssuer

pytestmark = pytest.mark.slow

ICE = 20
TOKENS = TokenIssuer(SECRET, 3600)


def token(room: str, client: str) -> str:
    return TOKENS.mint(room, client, TOKENS.expiry())  # type: ignore[arg-type]


class Port:
    """What tests.support's helpers need of a server: its port."""

    def __init__(self, port: int) -> None:
        self.port = port


@contextmanager
def backends(redis: RedisServer, count: int, *args: str) -> Iterator[list[ServerProcess]]:
    with ExitStack() as stack:
        yield [stack.enter_context(server_process("--redis", redis.url, "--secret", SECRET, *args))
               for _ in range(count)]


async def join_on(backend: ServerProcess, room: str, client: str) -> tuple[Client, list[str]]:
    return await join(Port(backend.port), room, client, token(room, client))  # type: ignore[arg-type]


async def send_call_half(client: Client, to: str, first: str) -> None:
    client.signal(first, to, sample_data(first, 1))
    for i in range(ICE):
        client.signal("ice-candidate", to, sample_data("ice-candidate", i))
    client.signal("ice-candidate", to, {"candidate": ""})  # end-of-candidates: the last frame


async def expect_call_half(client: Client, sender: str, first: str) -> None:
    """Exactly the frames sent, once each, in order (a duplicate would show before the end)."""
    frame = await client.recv_type(first, timeout=10)
    assert frame["from"] == sender and frame["data"] == sample_data(first, 1)
    for i in range(ICE):
        frame = await client.recv_type("ice-candidate", timeout=10)
        assert frame["data"] == sample_data("ice-candidate", i), frame
    frame = await client.recv_type("ice-candidate", timeout=10)
    assert frame["data"] == {"candidate": ""}


async def call(room: str, first: ServerProcess, second: ServerProcess) -> None:
    """One call: a joins on ``first``, b on ``second``; presence, offer/answer, ICE both ways."""
    a, peers = await join_on(first, room, "a")
    assert peers == []
    b: Client | None = None
    try:
        b, peers = await join_on(second, room, "b")
        assert peers == ["a"]
        assert (await a.recv_type("peer-joined", timeout=10))["data"]["clientId"] == "b"
        await send_call_half(a, "b", "offer")
        await send_call_half(b, "a", "answer")
        await asyncio.gather(expect_call_half(b, "a", "offer"), expect_call_half(a, "b", "answer"))
        b.close()
        assert (await a.recv_type("peer-left", timeout=10))["data"]["clientId"] == "b"
    finally:
        a.close()
        if b is not None:
            b.close()


def metric(backend: ServerProcess, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{backend.metrics_port}/metrics", timeout=scaled(5)) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


async def test_two_clients_on_different_backends_call_through_redis(redis_server: RedisServer) -> None:
    with backends(redis_server, 2) as (one, two):
        await call("r1", one, two)
        await call("r2", two, one)
        assert metric(one, 'signaling_cluster_frames_total{direction="sent"}') > 2 * ICE
        assert metric(two, 'signaling_cluster_lease_events_total{event="claimed"}') >= 1
        status, body = await http(Port(one.port), "GET", "/readyz")  # type: ignore[arg-type]
        assert (status, body) == (200, {"status": "ready", "redis": "up"})
