"""transport/cluster.py's Redis side against a real redis-server, in this process: the
lease scripts, claims, the publish queue's bound, the channel reader."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from actors.ids import RoomId
from actors.ownership import Local, envelope
from metrics.signaling import SignalingMetrics
from tests.cluster.conftest import RedisServer
from tests.support import make_settings, scaled
from transport import cluster as cluster_module
from transport.cluster import CLAIM, REASSERT, RELEASE, RENEW

LEASE, EPOCH = "signaling:lease:r", "signaling:epoch"


async def test_claim_renew_release_reassert(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    claim, renew = client.register_script(CLAIM), client.register_script(RENEW)
    release, reassert = client.register_script(RELEASE), client.register_script(REASSERT)
    try:
        assert await claim(keys=[LEASE, EPOCH], args=["A", 5000, 0]) == [1, 1]
        assert await claim(keys=[LEASE, EPOCH], args=["B", 5000, 0]) == [0, b"A 1"]  # held: B learns the owner
        assert 0 < await client.pttl(LEASE) <= 5000

        assert await renew(keys=[LEASE], args=["B 1", 60000]) == 0  # not B's
        assert await renew(keys=[LEASE], args=["A 1", 60000]) == 1
        assert await client.pttl(LEASE) > 5000

        assert await release(keys=[LEASE], args=["B 1"]) == 0 and await client.exists(LEASE)
        assert await release(keys=[LEASE], args=["A 1"]) == 1 and not await client.exists(LEASE)

        # Redis restarted empty: the counter starts again, but never below what the
        # claiming backend has seen, so an old epoch is never handed out twice.
        await client.flushall()
        assert await claim(keys=[LEASE, EPOCH], args=["B", 5000, 41]) == [1, 42]
        assert await client.get(EPOCH) == b"42"

        # A backend re-asserting after a reconnect: its own lease or an absent one is
        # kept (and the counter raised past it); one taken by another backend is lost.
        assert await reassert(keys=[LEASE, EPOCH], args=["A 7", 5000, 7]) == 0  # B holds it
        await client.flushall()
        assert await reassert(keys=[LEASE, EPOCH], args=["A 50", 5000, 50]) == 1
        assert await client.get(LEASE) == b"A 50" and await client.get(EPOCH) == b"50"
        assert await reassert(keys=[LEASE, EPOCH], args=["A 50", 5000, 50]) == 1
        assert (await claim(keys=[LEASE, EPOCH], args=["C", 5000, 0]))[0] == 0
        await client.delete(LEASE)
        assert await claim(keys=[LEASE, EPOCH], args=["C", 5000, 0]) == [1, 51]
        # A leftover lease of the claimant's own id is adopted under a new epoch; a lease
        # of an id that merely starts like ours is not.
        assert await claim(keys=[LEASE, EPOCH], args=["C", 5000, 0]) == [1, 52]
        assert await client.get(LEASE) == b"C 52"
        assert await claim(keys=[LEASE, EPOCH], args=["", 5000, 0]) == [0, b"C 52"]
        assert await claim(keys=[LEASE, EPOCH], args=["C:", 5000, 0]) == [0, b"C 52"]
    finally:
        await client.aclose()


async def test_a_publish_queue_that_redis_does_not_drain_counts_as_a_lost_link(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    cluster = cluster_module.make_cluster(
        make_settings(redis=redis_server.url, secret="s" * 32), SignalingMetrics(registry), 0
    )
    await cluster.start()
    try:
        assert cluster.up
        redis_server.signal(signal.SIGSTOP)  # Redis stalls: nothing drains
        try:
            frame = b"x" * 65536
            for i in range(cluster_module.OUTBOX_LIMIT_BYTES // len(frame) + 2):
                cluster.publish("signaling:backend:nobody", frame)
                if i == 0:
                    await asyncio.sleep(0)  # the first pipeline is now in flight, and stuck
            assert not cluster.up  # remote clients were closed with 4502; reconnecting
            assert registry.get_sample_value("signaling_cluster_frames_dropped_total", {"reason": "link-down"}) >= 1
        finally:
            redis_server.signal(signal.SIGCONT)
    finally:
        await cluster.close()


def in_process_cluster(redis_server: RedisServer, **settings: Any) -> tuple[cluster_module.Cluster, CollectorRegistry]:
    registry = CollectorRegistry()
    return cluster_module.make_cluster(
        make_settings(redis=redis_server.url, secret="s" * 32, **settings), SignalingMetrics(registry), 0
    ), registry


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll state of this process that has no event to await (the link's reconnect)."""
    deadline = time.monotonic() + scaled(timeout)
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_leftover_lease_of_our_own_is_adopted_not_refused(redis_server: RedisServer) -> None:
    cluster, registry = in_process_cluster(redis_server)
    await cluster.start()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        # The room was reaped while the link was down: its release never reached Redis.
        await client.set("signaling:lease:left", f"{cluster.backend_id} 5", px=60000)
        await client.set(EPOCH, 5)
        route = await cluster._route(RoomId("left"))
        assert route == Local(6)  # ours, under a new epoch that fences the old one
        assert await client.get("signaling:lease:left") == f"{cluster.backend_id} 6".encode()
        assert cluster.may_deliver(RoomId("left"))
    finally:
        await client.aclose()
        await cluster.close()


async def test_concurrent_joins_on_one_backend_claim_a_room_once(redis_server: RedisServer) -> None:
    cluster, registry = in_process_cluster(redis_server)
    await cluster.start()
    try:
        routes = await asyncio.gather(*(cluster._route(RoomId("race")) for _ in range(5)))
        assert len(set(routes)) == 1 and isinstance(routes[0], Local)
        assert registry.get_sample_value("signaling_cluster_lease_events_total", {"event": "claimed"}) == 1
    finally:
        await cluster.close()


async def test_a_reader_that_fails_on_a_message_counts_as_a_lost_link_and_reconnects(redis_server: RedisServer) -> None:
    cluster, _ = in_process_cluster(redis_server)
    await cluster.start()
    client = aioredis.Redis.from_url(redis_server.url)

    def broken(header: dict[str, Any], payload: bytes) -> bool:
        raise RuntimeError("a bug in a handler")

    try:
        reader = cluster.reader
        cluster.relays.handle = broken  # type: ignore[method-assign]
        assert await client.publish(cluster.channel, envelope({"k": "R"})) == 1
        # Not a silently dead reader behind a link that says up: the link was declared
        # lost (remote clients get 4502) and came back with a new reader.
        await until(lambda: cluster.reader is not reader and cluster.up)
        assert reader is not None and reader.done()
    finally:
        await client.aclose()
        await cluster.close()


def test_a_stalled_redis_is_declared_lost_before_any_lease_can_run_out() -> None:
    # Derived from --lease-ttl: a renewal sent just before the stall, the next tick's
    # PING, and its timeout all fit within the lease's certain validity, whatever the TTL.
    from actors.ownership import RENEWALS_PER_TTL, VALID_SHARE

    for ttl in (0.3, 1.0, 1.5, 3.0, 10.0, 60.0):
        interval = ttl / RENEWALS_PER_TTL
        assert interval + cluster_module.redis_timeout(ttl) < VALID_SHARE * ttl, ttl
        assert cluster_module.redis_timeout(ttl) <= cluster_module.TIMEOUT_MAX
