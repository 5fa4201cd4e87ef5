"""Cluster mode when one backend's Redis link fails and the others' do not: real
redis-server, real backend processes, and a TCP proxy (tests/cluster/conftest.py) between
one backend and Redis that the test resets or partitions.

A backend cut off from Redis must not leave the other side guessing: the owner keeps no
ghost member, the remote client gets a retryable close, and a backend that cannot renew
its lease stops serving the room before another backend can claim it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from actors.errors import CLOSE_ROOM_MOVED
from tests.cluster.conftest import SECRET, RedisServer, TcpProxy, tcp_proxy
from tests.cluster.test_cluster import RETRYABLE, join_on, metric, wait_redis
from tests.support import Closed, ServerProcess, scaled, server_process

pytestmark = pytest.mark.slow


@asynccontextmanager
async def two_backends(redis: RedisServer, *args: str) -> AsyncIterator[tuple[ServerProcess, ServerProcess, TcpProxy]]:
    """Backend one reaches Redis through a proxy the test controls; backend two directly."""
    async with tcp_proxy(redis) as proxy, AsyncExitStack() as stack:
        started = []
        for url in (proxy.url, redis.url):
            # Started off the loop: the proxy runs on it, and a backend connects at start-up.
            manager = server_process("--redis", url, "--secret", SECRET, *args)
            started.append(await asyncio.to_thread(manager.__enter__))
            stack.push_async_callback(asyncio.to_thread, manager.__exit__, None, None, None)
        one, two = started
        for backend in (one, two):
            await wait_redis(backend, "up")
        yield one, two, proxy


@pytest.mark.async_timeout(60)
async def test_an_edge_that_loses_its_redis_link_leaves_no_ghost_member_at_the_owner(redis_server: RedisServer) -> None:
    async with two_backends(redis_server, "--reconnect-grace", "1") as (one, two, proxy):
        a, _ = await join_on(two, "g", "a")  # two owns g
        b, _ = await join_on(one, "g", "b")  # remote member through one (the edge)
        assert (await a.recv_type("peer-joined"))["data"]["clientId"] == "b"
        proxy.reset()  # one's connections to Redis are cut; two's are not
        code, _ = await b.closed(timeout=10)
        assert code == CLOSE_ROOM_MOVED  # frames may have been lost: rejoin
        # The owner hears of it once one's link is back: b's seat is held for the grace,
        # then a sees it leave, instead of offering to a ghost forever.
        left = await a.recv(timeout=10)
        assert left["type"] == "peer-left" and left["data"]["clientId"] == "b", left
        a.close()


@pytest.mark.async_timeout(60)
async def test_an_owner_that_loses_its_redis_link_gets_its_remote_clients_closed_with_retry(
    redis_server: RedisServer,
) -> None:
    async with two_backends(redis_server, "--reconnect-grace", "1") as (one, two, proxy):
        a, _ = await join_on(one, "h", "a")  # one owns h
        b, _ = await join_on(two, "h", "b")  # remote member through two
        assert (await a.recv_type("peer-joined"))["data"]["clientId"] == "b"
        proxy.reset()  # the owner's link drops (and comes back); the edge's never did
        code, _ = await b.closed(timeout=10)  # not left open talking to nobody
        assert code == CLOSE_ROOM_MOVED
        left = await a.recv(timeout=10)
        assert left["type"] == "peer-left" and left["data"]["clientId"] == "b", left
        b, peers = await join_on(two, "h", "b")  # the retry works: the room is still one's
        assert peers == ["a"]
        assert (await a.recv_type("peer-joined"))["data"]["clientId"] == "b"
        for client in (a, b):
            client.close()


@pytest.mark.async_timeout(60)
async def test_a_backend_cut_off_from_redis_stops_serving_its_room_before_another_can_claim_it(
    redis_server: RedisServer,
) -> None:
    ttl = 1.0
    async with two_backends(redis_server, "--lease-ttl", str(ttl)) as (one, two, proxy):
        a, _ = await join_on(one, "p", "a")  # one owns p
        a2, _ = await join_on(one, "p", "a2")  # both local to one: no frame needs Redis
        assert (await a.recv_type("peer-joined"))["data"]["clientId"] == "a2"
        await proxy.partition()  # one cannot reach Redis at all; two can
        cut = time.monotonic()
        # By its own clock, one stops serving p within its lease and closes the members.
        code, _ = await a2.closed(timeout=10)
        assert code == CLOSE_ROOM_MOVED
        code, _ = await a.closed(timeout=10)
        assert code == CLOSE_ROOM_MOVED
        closed_after = time.monotonic() - cut
        # Only now can another backend have the room (its lease expires in Redis at
        # most ttl after one's last renewal, which preceded the cut).
        deadline = time.monotonic() + scaled(10)
        while True:
            try:
                b, peers = await join_on(two, "p", "b")
                break
            except RETRYABLE:  # the lease has not expired in Redis yet
                assert time.monotonic() < deadline, "two never claimed p"
                await asyncio.sleep(0.1)  # the client's retry backoff
        assert peers == []  # nobody else in p: one serves nobody there any more
        # a and a2 retry, on one: it cannot reach Redis, so it cannot know who owns p.
        with pytest.raises(Closed) as refused:
            await join_on(one, "p", "a")
        assert refused.value.code == CLOSE_ROOM_MOVED
        assert metric(one, 'signaling_cluster_lease_events_total{event="lost"}') >= 1
        print(f"partitioned owner closed its members {closed_after:.2f}s after the cut (lease ttl {ttl}s)")
        await proxy.heal()
        await wait_redis(one, "up")
        a, peers = await join_on(one, "p", "a")  # now relayed to two, the owner
        assert peers == ["b"]
        for client in (a, b):
            client.close()


@pytest.mark.async_timeout(60)
async def test_an_idle_backend_notices_a_stalled_redis_and_says_so(redis_server: RedisServer) -> None:
    async with two_backends(redis_server, "--lease-ttl", "1.5") as (one, _two, _proxy):
        assert metric(one, "signaling_redis_up") == 1
        redis_server.signal(signal.SIGSTOP)  # accepts bytes, answers nothing
        try:
            # No rooms, nothing to renew: the PING of every tick must notice.
            await wait_redis(one, "down", timeout=5)
            assert metric(one, "signaling_redis_up") == 0
            started = time.monotonic()
            with pytest.raises(Closed) as refused:  # a join needing Redis: refused, not hung
                await join_on(one, "s", "a")
            assert refused.value.code == CLOSE_ROOM_MOVED
            assert time.monotonic() - started < scaled(2)
        finally:
            redis_server.signal(signal.SIGCONT)
        await wait_redis(one, "up")
        assert metric(one, "signaling_redis_up") == 1
