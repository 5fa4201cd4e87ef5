"""transport/cluster.py's Redis side against a real redis-server: the lease scripts, the
publish queue's bound."""

from __future__ import annotations

import asyncio
import signal

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from metrics.signaling import SignalingMetrics
from tests.cluster.conftest import RedisServer
from tests.support import make_settings
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
    finally:
        await client.aclose()


async def test_a_publish_queue_that_redis_does_not_drain_counts_as_a_lost_link(redis_server: RedisServer) -> None:
    registry = CollectorRegistry()
    cluster = cluster_module.make_cluster(make_settings(redis=redis_server.url, secret="s" * 32),
                                          SignalingMetrics(registry), 0)
    await cluster.start()
    try:
        assert cluster.up
        redis_server.signal(signal.SIGSTOP)  # Redis stalls: nothing drains
        try:
            for i in range(cluster_module.OUTBOX_LIMIT + 2):
                cluster.publish("signaling:backend:nobody", b"x")
                if i == 0:
                    await asyncio.sleep(0)  # the first pipeline is now in flight, and stuck
            assert not cluster.up  # remote clients were closed with 4502; reconnecting
            assert registry.get_sample_value("signaling_cluster_frames_dropped_total",
                                             {"reason": "link-down"}) >= 1
        finally:
            redis_server.signal(signal.SIGCONT)
    finally:
        await cluster.close()
