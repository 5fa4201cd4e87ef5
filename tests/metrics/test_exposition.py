"""The live /metrics of a running server: what Prometheus will actually read.

Real REST and WebSocket traffic first, so the series carry real values, then the
exposition is checked with promtool, Prometheus's own linter.
"""

from __future__ import annotations

import asyncio

from tests.metrics.tools import promtool, sample_names, scrape, traffic
from tests.support import fetch, running_server, scaled, server_process
from transport.server import Server


async def test_the_live_exposition_passes_promtool_check_metrics_after_traffic() -> None:
    async with running_server() as server:
        await traffic(server)
        content_type, text = await scrape(server)
    assert content_type.startswith("text/plain")
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


async def test_traffic_moves_the_series_each_call_site_feeds(server: Server) -> None:
    await traffic(server)
    get = server.metrics.registry.get_sample_value
    expected = {
        ("signaling_joins_total", (("path", "rest"), ("outcome", "ok"))): 1,
        ("signaling_joins_total", (("path", "rest"), ("outcome", "invalid-request"))): 1,
        ("signaling_joins_total", (("path", "ws"), ("outcome", "ok"))): 2,
        ("signaling_joins_total", (("path", "ws"), ("outcome", "client-id-taken"))): 1,
        ("signaling_frames_received_total", (("type", "offer"),)): 3,
        ("signaling_frames_received_total", (("type", "invalid"),)): 1,
        ("signaling_frame_errors_total", (("code", "invalid-json"),)): 1,
        ("signaling_messages_total", (("type", "offer"), ("outcome", "delivered"), ("reason", ""))): 1,
        ("signaling_messages_total", (("type", "answer"), ("outcome", "delivered"), ("reason", ""))): 1,
        ("signaling_messages_total", (("type", "ice-candidate"), ("outcome", "delivered"), ("reason", ""))): 1,
        ("signaling_messages_total", (("type", "offer"), ("outcome", "held"), ("reason", ""))): 1,
        ("signaling_messages_total", (("type", "offer"), ("outcome", "rejected"), ("reason", "unknown-peer"))): 1,
        ("signaling_closes_total", (("code", "4409"),)): 1,
        ("signaling_call_setup_seconds_count", ()): 1,
        ("signaling_relay_latency_seconds_count", ()): 3,
        ("signaling_rooms", ()): 1,  # carol's stub keeps the room open
        ("signaling_actors", ()): 2,  # the Hub and that room
    }
    got = {k: get(k[0], dict(k[1])) for k in expected}
    assert got == expected

    # Both clients left (the server sees bob's close after traffic() returns): the
    # server sets sockets_closed in the same on_close that lowers the gauge.
    await asyncio.wait_for(server.ctx.sockets_closed.wait(), scaled(5))
    assert get("signaling_connected_clients") == 0


async def test_metrics_are_negotiated_and_never_carry_created_series() -> None:
    async with running_server() as server:
        await traffic(server)
        plain_type, plain = await scrape(server)
        om_type, om = await scrape(server, accept="application/openmetrics-text; version=1.0.0")
    assert plain_type.startswith("text/plain") and om_type.startswith("application/openmetrics-text")
    assert om.rstrip().endswith("# EOF")
    for text in (plain, om):
        assert "_created" not in text
        assert "signaling_messages_total{" in text
    # Process metrics stay on next to the service's own.
    names = sample_names(plain)
    assert {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "python_gc_collections_total",
        "signaling_build_info",
    } <= names


async def test_the_real_process_serves_lintable_metrics_without_created_series() -> None:
    """main() as operators run it, not just the in-process Server the other tests use."""
    with server_process() as proc:
        await traffic(proc)
        response = await fetch(proc, "GET", "/metrics", port=proc.metrics_port)
    text = response.body.decode()
    assert response.code == 200 and "signaling_messages_total{" in text and "_created" not in text
    lint = promtool("check", "metrics", stdin=text)
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr
