"""Limits that keep one client from hurting the others: rates, per-IP caps, slow readers."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from tornado.httpclient import HTTPClientError

from tests.support import ServerFactory, connect, http, join, running_server, sample_data, scaled, server_process
from transport.limits import KeyedBuckets, TokenBucket


def test_a_token_bucket_allows_a_burst_then_the_sustained_rate() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0)
    assert [bucket.take(0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.full(10)


def test_keyed_buckets_are_per_key_and_stay_bounded() -> None:
    buckets = KeyedBuckets(rate=1, burst=1, max_keys=10)
    assert buckets.take("a", 0) and not buckets.take("a", 0) and buckets.take("b", 0)
    for n in range(100):
        buckets.take(f"ip{n}", 1000 + n)
    assert len(buckets.buckets) <= 10


async def test_a_flooding_connection_is_rate_limited_then_closed_with_1008_and_its_peer_is_fine(
    make_server: ServerFactory,
) -> None:
    server = await make_server(rate_limit=0.01, rate_burst=5, reconnect_grace=0)
    flood, _ = await join(server, "r", "flood")
    calm, _ = await join(server, "r", "calm")
    await flood.recv_type("peer-joined")
    for n in range(5):
        flood.signal("ice-candidate", to="calm", data=sample_data("ice-candidate", n))
    flood.signal("ice-candidate", to="calm")
    for n in range(5):
        assert (await calm.recv_type("ice-candidate"))["data"] == sample_data("ice-candidate", n)
    assert (await flood.recv_type("error"))["data"]["code"] == "rate-limited"
    for _ in range(10):
        flood.signal("ice-candidate", to="calm")
    code, reason = await flood.closed()
    assert code == 1008 and reason.startswith("rate-limited")
    assert await calm.recv() == {"type": "peer-left", "data": {"clientId": "flood"}}
    calm.signal("offer", to="nobody")
    assert (await calm.recv_type("error"))["data"]["code"] == "unknown-peer"
    calm.close()


async def test_connections_per_ip_are_capped_and_x_real_ip_counts_only_behind_a_trusted_proxy() -> None:
    async with running_server(max_connections_per_ip=2) as server:
        a, _ = await join(server, "r", "a")
        b, _ = await join(server, "r", "b")
        with pytest.raises(HTTPClientError) as refused:
            await connect(server, "r", "c", **{"X-Real-IP": "198.51.100.1"})  # ignored: no trusted proxy
        assert refused.value.code == 429
        b.close()
        await a.recv_type("peer-joined")
        await a.recv_type("peer-left")  # b's slot is free again
        c, _ = await join(server, "r", "c")
        a.close()
        c.close()
    async with running_server(max_connections_per_ip=1, trust_proxy=True) as server:
        clients = [await connect(server, "r", f"p{n}", **{"X-Real-IP": f"198.51.100.{n}"}) for n in range(3)]
        for c in clients:
            await c.recv_type("joined")
        with pytest.raises(HTTPClientError):
            await connect(server, "r", "again", **{"X-Real-IP": "198.51.100.0"})
        for c in clients:
            c.close()


async def test_rest_joins_are_rate_limited_per_ip_with_429(make_server: ServerFactory) -> None:
    server = await make_server(join_burst_per_ip=3, join_rate_per_ip=0.01)
    statuses = [(await http(server, "POST", "/rooms/join"))[0] for _ in range(3)]
    status, body = await http(server, "POST", "/rooms/join")
    assert statuses == [200, 200, 200]
    assert status == 429 and body["error"]["code"] == "rate-limited"


async def test_a_client_that_never_reads_is_closed_with_1013_and_server_memory_stays_bounded() -> None:
    frame_bytes, frames = 32 * 1024, 1500  # ~48 MB pushed at a reader that reads nothing
    args = (
        "--max-outbound-bytes",
        str(256 * 1024),
        "--rate-limit",
        "1000000",
        "--rate-burst",
        "1000000",
        "--reconnect-grace",
        "0",
    )
    with server_process(*args) as proc:
        rss_before = rss_kb(proc.proc.pid)
        mute = socket.create_connection(("127.0.0.1", proc.port))
        mute.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        mute.sendall(
            b"GET /ws?roomId=slow&clientId=mute HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        try:
            flooder, _ = await join(proc, "slow", "flooder")
            a, _ = await join(proc, "healthy", "a")
            b, _ = await join(proc, "healthy", "b")
            padding = "x" * frame_bytes

            async def round_trips(count: int) -> list[float]:
                # A healthy pair in another room keeps talking while the flood goes on.
                times = []
                for _ in range(count):
                    started = time.perf_counter()
                    a.signal("offer", to="b")
                    assert (await b.recv_type("offer"))["from"] == "a"
                    times.append(time.perf_counter() - started)
                return times

            healthy = asyncio.ensure_future(round_trips(200))
            for n in range(frames):
                flooder.signal("offer", to="mute", data={"type": "offer", "sdp": padding, "n": n})
            left = await flooder.recv(timeout=30)  # the server cuts the mute reader off
            assert left == {"type": "peer-left", "data": {"clientId": "mute"}}
            rss_after = rss_kb(proc.proc.pid)
            times = sorted(await asyncio.wait_for(healthy, scaled(30)))
            print(
                f"healthy pair during the flood: p50 {times[len(times) // 2] * 1000:.2f} ms, "
                f"max {times[-1] * 1000:.2f} ms over {len(times)} round trips"
            )
            status, text = await http(proc, "GET", "/metrics", port=proc.metrics_port)
            assert "signaling_slow_reader_disconnects_total 1.0" in text
            assert 'signaling_closes_total{code="1013"} 1.0' in text
            print(f"server RSS {rss_before} -> {rss_after} KB with {frames * frame_bytes // 1024} KB pushed")
            assert rss_after - rss_before < 40 * 1024, (rss_before, rss_after)  # far below the ~48 MB pushed
            for c in (flooder, a, b):
                c.close()
        finally:
            mute.close()


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_the_room_limit_refuses_a_new_room_on_rest_and_websocket_but_not_existing_rooms(
    make_server: ServerFactory,
) -> None:
    server = await make_server(max_rooms=1)
    a, _ = await join(server, "r1", "a")
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r2"})
    assert status == 503 and body["error"]["code"] == "server-full"
    refused = await connect(server, "r2", "b")
    code, reason = await refused.closed()
    assert code == 4503 and reason.startswith("server-full")
    b, peers = await join(server, "r1", "b")
    assert peers == ["a"]
    a.close()
    b.close()


async def test_frames_held_for_a_stub_are_capped_and_the_sender_is_told(make_server: ServerFactory) -> None:
    server = await make_server(max_held=3)
    status, body = await http(server, "POST", "/rooms/r/join", {"clientId": "late"})
    assert status == 200
    a, _ = await join(server, "r", "a")
    for n in range(4):
        a.signal("ice-candidate", to="late", data=sample_data("ice-candidate", n))
    frame = await a.recv_type("error")
    assert frame["data"]["code"] == "peer-queue-full"
    late, _ = await join(server, "r", "late", token=body["token"])
    assert [(await late.recv_type("ice-candidate"))["data"] for _ in range(3)] == [
        sample_data("ice-candidate", n) for n in range(3)
    ]
    a.close()
    late.close()


async def test_the_byte_cap_counts_utf8_bytes_not_characters(make_server: ServerFactory) -> None:
    server = await make_server(max_frame_bytes=4096)
    a, _ = await join(server, "r", "a")
    b, _ = await join(server, "r", "b")
    await a.recv_type("peer-joined")
    wide = "\U0001f600" * 1500  # 1,500 characters, 6,000 bytes of UTF-8
    a.send(json.dumps({"type": "offer", "to": "b", "data": {"type": "offer", "sdp": wide}}, ensure_ascii=False))
    assert (await a.recv_type("error"))["data"]["code"] == "frame-too-large"
    a.close()
    b.close()
