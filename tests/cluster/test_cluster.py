"""Cluster mode end to end: real redis-server, real backend processes, real WebSocket clients.

Clients connect to chosen backends directly, so a call's two clients are deliberately
on different backends and every frame between them crosses Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClosedError

from actors.errors import CLOSE_ROOM_MOVED
from loadtests.launch import Nginx
from tests.cluster.conftest import SECRET, RedisServer
from tests.support import (
    Client,
    Closed,
    ServerProcess,
    connect,
    http,
    join,
    sample_data,
    scaled,
    server_process,
)
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
        yield [
            stack.enter_context(server_process("--redis", redis.url, "--secret", SECRET, *args)) for _ in range(count)
        ]


async def join_on(backend: ServerProcess | Port | Nginx, room: str, client: str) -> tuple[Client, list[str]]:
    return await join(Port(backend.port), room, client, token(room, client))  # type: ignore[arg-type]


PRESENCE = ("peer-joined", "peer-left")


async def send_call_half(client: Client, to: str, first: str) -> None:
    client.signal(first, to, sample_data(first, 1))
    for i in range(ICE):
        client.signal("ice-candidate", to, sample_data("ice-candidate", i))
    client.signal("ice-candidate", to, {"candidate": ""})  # end-of-candidates: the last frame


async def recv_signal(client: Client, strict: bool) -> dict[str, Any]:
    """The next frame; when not ``strict`` (a retried call), presence of earlier attempts'
    clients is skipped."""
    while True:
        frame = await client.recv(timeout=10)
        if strict or frame["type"] not in PRESENCE:
            return frame


async def expect_call_half(client: Client, sender: str, first: str, strict: bool = True) -> None:
    """Exactly the frames sent, once each, in order (a duplicate would show before the end)."""
    frame = await recv_signal(client, strict)
    assert frame["type"] == first and frame["from"] == sender and frame["data"] == sample_data(first, 1), frame
    for i in range(ICE):
        frame = await recv_signal(client, strict)
        assert frame["type"] == "ice-candidate" and frame["data"] == sample_data("ice-candidate", i), frame
    frame = await recv_signal(client, strict)
    assert frame["type"] == "ice-candidate" and frame["data"] == {"candidate": ""}, frame


async def call(
    room: str,
    first: ServerProcess | Port,
    second: ServerProcess | Port,
    ids: tuple[str, str] = ("a", "b"),
    strict: bool = True,
) -> None:
    """One call: ids[0] joins on ``first``, ids[1] on ``second``; presence, offer/answer, ICE
    both ways. ``strict``: the room was empty before (else earlier clients may show)."""
    x, y = ids
    a, peers = await join_on(first, room, x)
    assert peers == [] or not strict
    b: Client | None = None
    try:
        b, peers = await join_on(second, room, y)
        if not strict and x not in peers:
            # Legitimate only if x's connection was closed meanwhile (its backend drained or
            # died): then retry. Were x alive and unseen, the room would be owned twice.
            try:
                code, reason = await a.closed(timeout=5)
            except TimeoutError:
                raise AssertionError(f"{y} does not see {x}, which is still connected") from None
            raise Closed(code, reason)
        assert peers == [x] if strict else x in peers
        while True:
            frame = await a.recv(timeout=10)
            if frame["type"] == "peer-joined" and frame["data"]["clientId"] == y:
                break
            assert not strict, frame
        await send_call_half(a, y, "offer")
        await send_call_half(b, x, "answer")
        await asyncio.gather(expect_call_half(b, x, "offer", strict), expect_call_half(a, y, "answer", strict))
        if strict:
            # A later event on both sides, so that a duplicate of either side's last frame
            # would show: the next frame of each must be this presence, not a repeat.
            z, _ = await join_on(second, room, "z")
            for client in (a, b):
                assert (await client.recv_type("peer-joined", timeout=10))["data"]["clientId"] == "z"
            z.close()
            for client in (a, b):  # b too: a frame still on its way when b closes is a drop
                assert (await client.recv_type("peer-left", timeout=10))["data"]["clientId"] == "z"
            b.close()
            assert (await a.recv_type("peer-left", timeout=10))["data"]["clientId"] == y
    finally:
        a.close()
        if b is not None:
            b.close()


async def call_via(proxy: Port | Nginx, room: str, ids: tuple[str, str] = ("a", "b"), strict: bool = True) -> None:
    """A call whose clients both connect through ``proxy`` (nginx)."""
    await call(room, proxy, proxy, ids, strict)


def metric(backend: ServerProcess, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{backend.metrics_port}/metrics", timeout=scaled(5)) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


async def test_two_clients_on_different_backends_call_through_redis(redis_server: RedisServer) -> None:
    with backends(redis_server, 2) as (one, two):
        await call("r1", one, two)
        await call("r2", two, one)
        assert metric(one, 'signaling_cluster_frames_total{direction="sent"}') > 2 * ICE
        assert metric(two, 'signaling_cluster_lease_events_total{event="claimed"}') >= 1
        status, body = await http(Port(one.port), "GET", "/readyz")  # type: ignore[arg-type]
        assert (status, body) == (200, {"status": "ready", "redis": "up"})


ROOMS = int(os.environ.get("SIGNALING_CLUSTER_ROOMS", "200"))


@pytest.mark.async_timeout(120)
async def test_many_calls_across_three_backends_deliver_every_frame_once_in_order(redis_server: RedisServer) -> None:
    with backends(redis_server, 3) as trio:
        limit = asyncio.Semaphore(20)  # concurrent calls: within the per-IP socket limit

        async def one(i: int) -> None:
            async with limit:
                await call(f"room{i}", trio[i % 3], trio[(i + 1) % 3])

        await asyncio.gather(*(one(i) for i in range(ROOMS)))
        relayed = sum(metric(b, 'signaling_cluster_frames_total{direction="received"}') for b in trio)
        # Every call's frames crossed: at least both halves of each call, through Redis.
        assert relayed >= ROOMS * 2 * (ICE + 2)
        assert sum(metric(b, "signaling_cluster_frames_dropped_total") for b in trio) == 0


async def wait_redis(backend: ServerProcess, state: str, timeout: float = 10.0) -> None:
    """Poll /readyz until it reports the Redis link ``state`` (another process: no event to await)."""
    deadline = time.monotonic() + scaled(timeout)
    while (seen := await redis_state(backend)) != state:
        assert time.monotonic() < deadline, f"redis link still {seen}, expected {state}"
        await asyncio.sleep(0.05)


async def redis_state(backend: ServerProcess) -> str:
    try:
        status, body = await http(Port(backend.port), "GET", "/readyz")  # type: ignore[arg-type]
    except OSError:
        return "unreachable"
    return str(body.get("redis")) if status == 200 else f"status {status}"


# What a client sees of a failed backend or a moving room; it retries. (An AssertionError,
# a wrong or duplicated frame, is never retried.)
RETRYABLE = (Closed, TimeoutError, OSError, HTTPClientError, WebSocketClosedError)
CALLS = int(os.environ.get("SIGNALING_CLUSTER_FAILOVER_CALLS", "100"))


async def call_with_retry(
    place: Callable[[tuple[str, str]], Awaitable[None]], counts: dict[str, int], attempts: int
) -> None:
    """One call as a client makes it: ``place(ids)`` again after the client's backoff on a
    RETRYABLE error, fresh client ids each attempt. Counts "ok", each "retried", and
    "failed" once 30 s have passed without success."""
    deadline = time.monotonic() + scaled(30)
    for attempt in range(attempts):
        try:
            await place((f"a{attempt}", f"b{attempt}"))
            counts["ok"] += 1
            return
        except RETRYABLE:
            counts["retried"] += 1
            if time.monotonic() > deadline:
                counts["failed"] += 1
                return
            await asyncio.sleep(0.2)  # the client's retry backoff


@asynccontextmanager
async def calling(
    workers: int, place: Callable[[int, int, tuple[str, str]], Awaitable[None]], attempts: int
) -> AsyncIterator[dict[str, int]]:
    """``workers`` tasks placing calls back to back (``place(worker, n, ids)``, each with
    call_with_retry) until the block ends; yields the shared counts."""
    stop = asyncio.Event()
    counts = {"ok": 0, "retried": 0, "failed": 0}

    async def caller(worker: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            await call_with_retry(lambda ids, n=n: place(worker, n, ids), counts, attempts)

    tasks = [asyncio.create_task(caller(w)) for w in range(workers)]
    try:
        yield counts
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def until_ok(counts: dict[str, int], at_least: int, timeout: float = 40.0) -> None:
    """Until the callers above have completed ``at_least`` calls (``counts["ok"]``)."""
    deadline = time.monotonic() + scaled(timeout)
    while counts["ok"] < at_least:
        assert time.monotonic() < deadline, f"only {counts} after {timeout}s"
        await asyncio.sleep(0.05)  # counting completed calls of concurrent tasks: no event to await


@pytest.mark.async_timeout(150)
async def test_a_backend_killed_mid_setup_costs_no_call_after_retry(redis_server: RedisServer) -> None:
    # A short lease so the dead backend's rooms move within a second; no reconnect grace
    # so a dropped member leaves at once instead of holding its seat.
    with backends(redis_server, 3, "--lease-ttl", "1", "--reconnect-grace", "0") as trio:
        alive = list(trio)
        started = 0
        kill_at = CALLS // 3
        killed = asyncio.Event()
        retried = failed = 0
        limit = asyncio.Semaphore(20)

        async def one(i: int) -> None:
            nonlocal started, retried, failed
            async with limit:
                started += 1
                if started == kill_at:
                    trio[2].proc.kill()  # SIGKILL, mid-setup of the calls in flight
                    killed.set()
                deadline = time.monotonic() + scaled(40)
                pair = (trio[i % 3], trio[(i + 1) % 3])
                for attempt in range(100):
                    try:
                        await call(f"k{i}", *pair, ids=(f"a{attempt}", f"b{attempt}"), strict=False)
                        return
                    except RETRYABLE:  # closed (4502, 1006), refused, reset, timed out
                        retried += 1
                        if time.monotonic() > deadline:
                            failed += 1
                            return
                        live = [b for b in alive if b.proc.poll() is None]
                        pair = (live[attempt % len(live)], live[(attempt + 1) % len(live)])
                        await asyncio.sleep(0.2)  # the client's retry backoff

        await asyncio.gather(*(one(i) for i in range(CALLS)))
        assert killed.is_set()
        assert failed == 0
        print(f"kill -9 mid-setup: {CALLS} calls, {retried} retried attempts, {failed} failed after retry")
        assert retried > 0  # the kill did hit calls in flight
        # No room was owned twice: in every completed call the second client saw the
        # first in its Room (call() fails, unretried, when a live client is unseen).
        survivors = trio[:2]
        assert sum(metric(b, 'signaling_cluster_frames_dropped_total{reason="stale-epoch"}') for b in survivors) == 0


@pytest.mark.async_timeout(90)
async def test_redis_killed_and_restarted_the_cluster_recovers_without_restarting_backends(
    redis_server: RedisServer,
) -> None:
    with backends(redis_server, 2, "--lease-ttl", "3") as (one, two):
        a, _ = await join_on(one, "x", "a")
        b, _ = await join_on(two, "x", "b")  # remote: its frames cross Redis
        await a.recv_type("peer-joined")
        c, _ = await join_on(one, "local", "c")
        d, _ = await join_on(one, "local", "d")
        await c.recv_type("peer-joined")
        redis_server.kill()
        code, reason = await b.closed(timeout=10)
        assert code == CLOSE_ROOM_MOVED, reason  # frames may have been lost: rejoin
        await wait_redis(one, "down")
        # A room whose clients are all on one backend keeps working without Redis, while
        # its lease is certainly valid (0.9 x 3 s after the last renewal, at least 1.7 s)...
        c.signal("offer", "d")
        assert (await d.recv_type("offer"))["from"] == "c"
        # A join that would need Redis is refused with the retryable code, not hung.
        with pytest.raises(Closed) as refused:
            await join_on(two, "elsewhere", "e")
        assert refused.value.code == CLOSE_ROOM_MOVED
        # ... and no longer: one cannot tell this from a partition in which another
        # backend claims the room once the lease expires in Redis. Everyone rejoins.
        for client in (a, c, d):
            code, reason = await client.closed(timeout=10)
            assert code == CLOSE_ROOM_MOVED, reason
        redis_server.start()
        for backend in (one, two):
            await wait_redis(backend, "up")
        # The cluster works again by itself: the room is claimed afresh from the rejoins.
        a, _ = await join_on(one, "x", "a")
        b, peers = await join_on(two, "x", "b")
        assert peers == ["a"]
        a.signal("offer", "b")
        assert (await b.recv_type("offer"))["from"] == "a"
        await call("after", one, two)
        for client in (a, b):
            client.close()


@pytest.mark.async_timeout(60)
async def test_a_backend_paused_past_its_lease_does_not_deliver_for_the_room_it_lost(redis_server: RedisServer) -> None:
    with backends(redis_server, 2, "--lease-ttl", "1") as (one, two):
        a, _ = await join_on(one, "p", "a")  # one owns p
        a2, _ = await join_on(one, "p", "a2")  # a local member on the owner
        b, _ = await join_on(two, "p", "b")  # a remote one
        for peer in ("a2", "b"):
            assert (await a.recv_type("peer-joined"))["data"]["clientId"] == peer
        assert (await a2.recv_type("peer-joined"))["data"]["clientId"] == "b"
        os.kill(one.proc.pid, signal.SIGSTOP)
        try:
            code, _ = await b.closed(timeout=10)  # two's lease check: p's lease expired
            assert code == CLOSE_ROOM_MOVED
            # Sent while one is paused: they wait in its socket buffer.
            a.signal("offer", "b")
            a.signal("ice-candidate", None)  # a broadcast: would reach a2 and b
            b, peers = await join_on(two, "p", "b")  # two claims p with a newer epoch
            assert peers == []
            c, _ = await join_on(two, "p", "c")
            assert (await b.recv_type("peer-joined"))["data"]["clientId"] == "c"
        finally:
            os.kill(one.proc.pid, signal.SIGCONT)
        # It woke up, found its lease gone, and closed its members instead of delivering:
        # a2's next event is the close, not a's broadcast.
        with pytest.raises(Closed) as closed:
            await a2.recv(timeout=10)
        assert closed.value.code == CLOSE_ROOM_MOVED
        code, _ = await a.closed(timeout=10)
        assert code == CLOSE_ROOM_MOVED
        # The room lives on two now (a2's check above is the one that shows the fence:
        # b's new attachment is local to two, so nothing of one could reach it anyway).
        c.signal("answer", "b")
        frame = await b.recv()
        assert frame["type"] == "answer" and frame["from"] == "c", frame
        for client in (b, c):
            client.close()


def test_cluster_mode_without_a_shared_secret_refuses_to_start_with_one_line() -> None:
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "transport.server", "--redis", "redis://127.0.0.1:1/0"],
        capture_output=True,
        text=True,
        timeout=scaled(30),
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "--secret" in run.stderr, run.stderr


def test_one_process_mode_never_imports_redis() -> None:
    import subprocess
    import sys

    code = (
        "import sys, asyncio\n"
        "from tests.support import running_server\n"
        "async def main():\n"
        "    async with running_server():\n"
        "        pass\n"
        "asyncio.run(main())\n"
        "assert 'redis' not in sys.modules, 'redis imported'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=scaled(30), check=False)
    assert run.returncode == 0, run.stderr


def test_every_cluster_metric_is_in_the_observability_guide() -> None:
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from metrics.signaling import ClusterMetrics

    registry = CollectorRegistry()
    ClusterMetrics(registry)
    text = (Path(__file__).resolve().parents[2] / "docs" / "observability.md").read_text()
    for family in registry.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"`{name}`" in text, name


@pytest.mark.async_timeout(60)
async def test_sigterm_releases_leases_first_so_rooms_move_without_waiting_for_expiry(
    redis_server: RedisServer,
) -> None:
    # A lease far longer than the test: a room can only move this fast if it was released.
    with backends(redis_server, 2, "--lease-ttl", "60") as (one, two):
        a, _ = await join_on(one, "m", "a")  # one owns m
        b, _ = await join_on(two, "m", "b")  # remote attachment through one
        await a.recv_type("peer-joined")
        one.proc.send_signal(signal.SIGTERM)
        assert (await a.closed())[0] == 1001
        # The owner told b's backend to close it; that backend is not going away: the room
        # moves, and b rejoins (docs/cluster.md).
        assert (await b.closed())[0] == CLOSE_ROOM_MOVED
        assert await asyncio.to_thread(one.proc.wait, scaled(15)) == 0
        b, peers = await join_on(two, "m", "b")  # claims m at once: no 4502, no wait
        assert peers == []
        a, peers = await join_on(two, "m", "a")
        assert peers == ["b"]
        assert metric(two, 'signaling_cluster_lease_events_total{event="claimed"}') == 1
        a.close()
        b.close()


@pytest.mark.async_timeout(120)
async def test_calls_under_load_survive_a_redis_restart_after_client_retry(redis_server: RedisServer) -> None:
    with backends(redis_server, 2, "--lease-ttl", "1.5") as pair:
        # Each call across the two backends: it needs Redis.
        async with calling(
            6,
            lambda w, n, ids: call(f"u{w}x{n}", pair[w % 2], pair[(w + 1) % 2], ids=ids, strict=False),
            attempts=200,
        ) as counts:
            await until_ok(counts, 10)
            redis_server.kill()
            await wait_redis(pair[0], "down")
            redis_server.start()
            for backend in pair:
                await wait_redis(backend, "up")
            ok = counts["ok"]
            await until_ok(counts, ok + 20)  # calls across backends complete again
        assert counts["failed"] == 0
        assert counts["retried"] > 0


@pytest.mark.async_timeout(60)
async def test_the_owner_room_stays_the_authority_for_errors_held_frames_and_limits(redis_server: RedisServer) -> None:
    api_key = "cluster-test-api-key"
    with backends(redis_server, 2, "--api-key", api_key, "--max-members", "3") as (one, two):
        a, _ = await join_on(one, "h", "a")  # one owns h
        b, _ = await join_on(two, "h", "b")  # remote
        await a.recv_type("peer-joined")
        # An error frame from the owner's Room reaches the remote client.
        b.signal("offer", "nobody")
        error = await b.recv_type("error")
        assert error["data"]["code"] == "unknown-peer"
        # A seat reserved through the non-owner holds frames until its socket arrives.
        status, body = await http(
            Port(two.port),
            "POST",
            "/rooms/h/join",
            {"clientId": "c"},  # type: ignore[arg-type]
            Authorization=f"Bearer {api_key}",
        )
        assert status == 200, body
        b.signal("offer", "c", sample_data("offer", 5))
        c = await connect(Port(two.port), "h", "c", body["token"])  # type: ignore[arg-type]
        assert (await c.recv_type("joined"))["data"]["peers"] == ["a", "b"]
        held = await c.recv_type("offer")
        assert held["from"] == "b" and held["data"] == sample_data("offer", 5)
        # The member limit is the owner's: a fourth member is refused wherever it joins.
        with pytest.raises(Closed) as refused:
            await join_on(two, "h", "d")
        assert refused.value.code == 4429
        for client in (a, b, c):
            client.close()
