"""X-Real-IP / X-Forwarded-For without --trust-proxy: ignored, warned about once, counted."""

from __future__ import annotations

import logging

import pytest

from tests.support import ServerFactory, connect, http
from transport.server import Server

WARNING = "but --trust-proxy is off"


def counted(server: Server) -> float | None:
    return server.metrics.registry.get_sample_value("signaling_untrusted_proxy_headers_total")


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if WARNING in r.getMessage()]


async def test_proxy_headers_on_rest_and_websocket_requests_are_warned_about_once_and_each_counted(
    caplog: pytest.LogCaptureFixture, server: Server
) -> None:
    caplog.set_level(logging.INFO)
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "r"})
    assert status == 200
    assert counted(server) == 0 and not warnings(caplog)
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "r"}, **{"X-Forwarded-For": "203.0.113.5"})
    assert status == 200
    assert counted(server) == 1
    [warning] = warnings(caplog)
    assert warning.levelno == logging.WARNING and "127.0.0.1" in warning.getMessage()
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "r"}, **{"X-Real-IP": "203.0.113.6"})
    assert status == 200
    client = await connect(server, "r", "ws1", **{"X-Real-IP": "203.0.113.7"})
    await client.recv_type("joined")
    other = await connect(server, "r", "ws2", **{"X-Forwarded-For": "203.0.113.8, 10.0.0.1"})
    await other.recv_type("joined")
    plain = await connect(server, "r", "ws3")
    await plain.recv_type("joined")
    assert counted(server) == 4
    assert len(warnings(caplog)) == 1  # once per process, not per request
    for c in (client, other, plain):
        c.close()


async def test_behind_a_trusted_proxy_the_headers_are_used_and_neither_warned_about_nor_counted(
    caplog: pytest.LogCaptureFixture, make_server: ServerFactory
) -> None:
    caplog.set_level(logging.INFO)
    server = await make_server(trust_proxy=True)
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "r"}, **{"X-Real-IP": "203.0.113.6"})
    assert status == 200
    client = await connect(server, "r", "ws1", **{"X-Real-IP": "203.0.113.7"})
    await client.recv_type("joined")
    assert counted(server) == 0 and not warnings(caplog)
    client.close()
