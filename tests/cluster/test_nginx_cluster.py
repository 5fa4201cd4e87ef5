"""Three backends behind the shipped nginx config, on one Redis: affinity and rolling restarts."""

from __future__ import annotations

import asyncio
import signal
from contextlib import ExitStack
from pathlib import Path

import pytest

from loadtests.launch import free_port, nginx
from tests.cluster.conftest import SECRET, RedisServer
from tests.cluster.test_cluster import Port, call_via, calling, join_on, metric, until_ok
from tests.support import ServerProcess, connect, http, scaled, server_process

pytestmark = pytest.mark.slow


API_KEY = "cluster-test-api-key"
BACKEND_ARGS = (
    "--api-key",
    API_KEY,
    "--trust-proxy",
    "--lease-ttl",
    "2",
    "--max-connections-per-ip",
    "1000",
    "--join-rate-per-ip",
    "1000",
    "--join-burst-per-ip",
    "1000",
)


def start_backend(stack: ExitStack, redis: RedisServer, port: int) -> ServerProcess:
    return stack.enter_context(
        server_process("--redis", redis.url, "--secret", SECRET, *BACKEND_ARGS, "--port", str(port))
    )


@pytest.mark.async_timeout(150)
async def test_behind_nginx_no_frame_crosses_redis_and_a_rolling_restart_costs_no_call(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    ports = [free_port() for _ in range(3)]
    with ExitStack() as stack:
        backends = [start_backend(stack, redis_server, p) for p in ports]
        with nginx(ports, tmp_path, timeout=scaled(10)) as proxy:
            # Steady state: nginx hashes on the room id, so both clients of a call reach
            # the room's owner and nothing crosses Redis.
            await asyncio.gather(*(call_via(proxy, f"steady{i}") for i in range(30)))
            assert sum(metric(b, 'signaling_cluster_frames_total{direction="sent"}') for b in backends) == 0
            assert all(metric(b, "signaling_rooms") == 0 for b in backends)
            # A REST join with the room in the body carries no room in the URI, so it can
            # land on any backend: it reserves the seat on the room's owner, through Redis,
            # and the token it returns opens the WebSocket wherever nginx sends it.
            a, _ = await join_on(proxy, "viaBody", "a")
            for i, backend in enumerate(backends):
                status, body = await http(
                    Port(backend.port),
                    "POST",
                    "/rooms/join",  # type: ignore[arg-type]
                    {"roomId": "viaBody", "clientId": f"b{i}"},
                    Authorization=f"Bearer {API_KEY}",
                )
                assert status == 200, body
                b = await connect(proxy, "viaBody", f"b{i}", body["token"])  # type: ignore[arg-type]
                joined = await b.recv_type("joined")
                assert "a" in joined["data"]["peers"]
                assert (await a.recv_type("peer-joined"))["data"]["clientId"] == f"b{i}"
                b.close()
                assert (await a.recv_type("peer-left"))["data"]["clientId"] == f"b{i}"
            a.close()
            assert sum(metric(b, 'signaling_cluster_frames_total{direction="sent"}') for b in backends) > 0

            # Rolling restart under steady call-setup load.
            async with calling(
                8, lambda w, n, ids: call_via(proxy, f"roll{w}x{n}", ids=ids, strict=False), attempts=100
            ) as counts:
                for i, port in enumerate(ports):
                    before = counts["ok"]
                    backends[i].proc.send_signal(signal.SIGTERM)
                    await asyncio.to_thread(backends[i].proc.wait, scaled(15))
                    assert backends[i].proc.returncode == 0
                    backends[i] = start_backend(stack, redis_server, port)
                    await until_ok(counts, before + 10)  # calls keep completing between restarts
            print(f"rolling restart: {counts}")
            assert counts["failed"] == 0
            assert counts["ok"] >= 30
