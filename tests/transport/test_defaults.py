"""The per-address defaults let a crowd behind one address in (CGNAT, an office NAT, a
proxy without --trust-proxy), while the per-connection limits still stop one client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support import Client, ServerFactory, connect, http, join, server_process
from transport.limits import KeyedBuckets
from transport.server import Server
from transport.settings import Settings

USERS = 500
ROOM_SIZE = 10  # under the default --max-members (16)


def join_schedule(settings: Settings, users: int) -> list[float]:
    """The earliest second at which each of ``users`` joins from one address is allowed."""
    burst, rate = settings.join_burst_per_ip, settings.join_rate_per_ip
    return [max(0.0, (n + 1 - burst) / rate) for n in range(users)]


def test_the_default_join_bucket_admits_500_users_from_one_address_within_a_minute() -> None:
    defaults = Settings()
    schedule = join_schedule(defaults, USERS)
    assert schedule[-1] <= 60.0
    assert defaults.max_connections_per_ip >= USERS
    # The bucket itself, on its own clock: 500 at once, and 500 spread over the minute.
    at_once = KeyedBuckets(defaults.join_rate_per_ip, defaults.join_burst_per_ip)
    assert all(at_once.take("198.51.100.1", 0.0) for _ in range(USERS))
    spread = KeyedBuckets(defaults.join_rate_per_ip, defaults.join_burst_per_ip)
    assert all(spread.take("198.51.100.1", n * 60.0 / USERS) for n in range(USERS))
    # ...and then, at 3,000 a minute sustained, it still refuses a flood from that address.
    flood = KeyedBuckets(defaults.join_rate_per_ip, defaults.join_burst_per_ip)
    assert sum(flood.take("198.51.100.1", n / 10_000) for n in range(10_000)) < 600


async def recv_until(client: Client, type_: str) -> dict[str, Any]:
    """The next frame of ``type_``, skipping presence (the crowd joins in any order)."""
    while True:
        frame = await client.recv(timeout=30)
        if frame["type"] == type_:
            return frame
        assert frame["type"] in ("peer-joined", "peer-left"), frame


@pytest.mark.async_timeout(90)
async def test_with_only_defaults_500_users_from_one_address_join_by_rest_then_websocket_and_all_stay() -> None:
    schedule = join_schedule(Settings(), USERS)  # as fast as the defaults allow: all at once
    with server_process() as proc:  # nothing but free ports: every limit at its default
        gate = asyncio.Semaphore(100)  # the test's own client, not the server, is the bottleneck
        started = asyncio.get_running_loop().time()

        async def user(n: int) -> Client:
            await asyncio.sleep(max(0.0, started + schedule[n] - asyncio.get_running_loop().time()))
            async with gate:
                room, client_id = f"crowd{n // ROOM_SIZE}", f"u{n}"
                status, body = await http(proc, "POST", "/rooms/join", {"roomId": room, "clientId": client_id})
                assert status == 200, body
                client, _ = await join(proc, room, client_id, token=body["token"])
                return client

        clients = await asyncio.gather(*(user(n) for n in range(USERS)))
        elapsed = asyncio.get_running_loop().time() - started
        # All joined; now every one of them is still there: each room's first member
        # broadcasts, every other member gets it, and one of them answers the first.
        for first in range(0, USERS, ROOM_SIZE):
            clients[first].signal("offer")
        for n, client in enumerate(clients):
            if n % ROOM_SIZE:
                assert (await recv_until(client, "offer"))["from"] == f"u{n - n % ROOM_SIZE}"
        for first in range(0, USERS, ROOM_SIZE):
            clients[first + 1].signal("answer", to=f"u{first}")
        for first in range(0, USERS, ROOM_SIZE):
            assert (await recv_until(clients[first], "answer"))["from"] == f"u{first + 1}"
        _, text = await http(proc, "GET", "/metrics", port=proc.metrics_port)
        assert "signaling_connected_clients 500.0" in text
        assert 'signaling_joins_total{outcome="rate-limited",path="rest"} 0.0' in text
        assert 'signaling_joins_total{outcome="ok",path="ws"} 500.0' in text
        for client in clients:
            client.close()
    print(f"500 users from one address joined in {elapsed:.1f} s")
    assert " 429 " not in "".join(proc.log)


async def test_with_default_limits_one_flooding_connection_is_still_rate_limited_then_closed(
    make_server: ServerFactory,
) -> None:
    server = await make_server(reconnect_grace=0)
    defaults = Settings()
    flood, _ = await join(server, "r", "flood")
    calm, _ = await join(server, "r", "calm")
    await flood.recv_type("peer-joined")
    # Far beyond the default burst, faster than the default rate refills it (on a loaded
    # machine a refill can let one frame through and restart the count of refusals in a
    # row, so send enough for several such restarts).
    for n in range(defaults.rate_burst * 10):
        flood.send({"type": "ice-candidate", "to": "calm", "data": {"candidate": f"c{n}"}})
    errors = 0
    while True:
        frame = await flood.recv()  # raises Closed when the server closes us
        if frame["type"] == "error":
            assert frame["data"]["code"] == "rate-limited"
            errors += 1
            if errors == defaults.rate_burst - 1:
                break
    code, reason = await flood.closed()
    assert code == 1008 and reason.startswith("rate-limited")
    calm.signal("offer", to="nobody")
    got = await calm.recv()
    while got["type"] == "ice-candidate":
        got = await calm.recv()
    assert got == {"type": "peer-left", "data": {"clientId": "flood"}}
    assert (await calm.recv_type("error"))["data"]["code"] == "unknown-peer"
    calm.close()


async def test_with_default_limits_a_frame_over_the_cap_is_refused_and_one_far_over_it_closes_1009(
    server: Server,
) -> None:
    client, _ = await join(server, "r", "big")
    limit = Settings().max_frame_bytes
    client.send(json.dumps({"type": "offer", "data": {"type": "offer", "sdp": "x" * limit}}))
    assert (await client.recv_type("error"))["data"]["code"] == "frame-too-large"
    client.send("x" * (4 * limit + 1))
    code, _ = await client.closed()
    assert code == 1009
    _, text = await http(server, "GET", "/metrics", port=server.metrics_port)
    assert 'signaling_closes_total{code="1009"} 1.0' in text
    other = await connect(server, "r", "other")
    await other.recv_type("joined")
    other.close()
