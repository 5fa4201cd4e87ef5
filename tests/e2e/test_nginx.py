"""The shipped nginx config in front of a real server process, with real nginx."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests.launch import Nginx, nginx
from tests.support import ServerProcess, connect, fetch, http, join, scaled, server_process


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[Nginx, ServerProcess]]:
    with server_process("--trust-proxy", "--max-connections-per-ip", "2") as backend:
        with nginx([backend.port], tmp_path, timeout=scaled(10), worker_connections=256) as proxy:
            yield proxy, backend


async def test_a_call_signals_through_nginx_and_metrics_stay_private(nginx_in_front) -> None:  # type: ignore[no-untyped-def]
    proxy, backend = nginx_in_front
    status, body = await http(proxy, "POST", "/rooms/join", {"clientId": "b"})
    assert status == 200
    room = body["roomId"]
    a, _ = await join(proxy, room, "a")
    b, peers = await join(proxy, room, "b", token=body["token"])
    assert peers == ["a"]
    a.signal("offer", to="b")
    assert (await b.recv_type("offer"))["from"] == "a"
    assert await http(proxy, "GET", "/readyz") == (200, {"status": "ready"})
    status, body = await http(proxy, "GET", "/metrics")
    assert status == 404 and body["error"]["code"] == "not-found"
    a.close()
    b.close()


async def test_nginx_serves_the_browser_app_and_the_openapi_document(nginx_in_front, web_dist) -> None:  # type: ignore[no-untyped-def]
    proxy, _ = nginx_in_front
    page = await fetch(proxy, "GET", "/")
    assert page.code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert (web_dist / "index.html").read_bytes() == page.body
    worker = await fetch(proxy, "GET", "/sw.js")
    assert worker.code == 200 and "javascript" in worker.headers["Content-Type"]
    status, document = await http(proxy, "GET", "/openapi.json")
    assert status == 200 and "/rooms/join" in document["paths"]
    status, body = await http(proxy, "DELETE", "/")
    assert status == 403


async def test_behind_nginx_the_per_ip_limit_counts_real_client_ips_not_nginx(nginx_in_front) -> None:  # type: ignore[no-untyped-def]
    proxy, _ = nginx_in_front
    # All test clients come from 127.0.0.1 through nginx, which overwrites X-Real-IP:
    # a forged header cannot dodge the limit of 2.
    a, _ = await join(proxy, "r", "a")
    b = await connect(proxy, "r", "b", **{"X-Real-IP": "203.0.113.9"})
    await b.recv_type("joined")
    from tornado.httpclient import HTTPClientError

    with pytest.raises(HTTPClientError) as refused:
        await connect(proxy, "r", "c", **{"X-Real-IP": "203.0.113.10"})
    assert refused.value.code == 429
    a.close()
    b.close()


async def test_nginx_logs_ws_without_its_query_so_a_token_from_a_real_join_never_reaches_its_access_log(
    nginx_in_front,
) -> None:  # type: ignore[no-untyped-def]
    proxy, _ = nginx_in_front
    status, body = await http(proxy, "POST", "/rooms/join", {"clientId": "tok"})
    assert status == 200
    token = body["token"]
    assert len(token) > 20
    client, _ = await join(proxy, body["roomId"], "tok", token=token)
    client.close()
    await client.closed()
    # nginx writes a WebSocket's line when the proxied connection ends: nothing to
    # await but the line itself, so poll the file, bounded.
    deadline = time.monotonic() + scaled(10)
    log = ""
    while " /ws " not in log and time.monotonic() < deadline:
        log = proxy.access_log.read_text() if proxy.access_log.exists() else ""
        await asyncio.sleep(0.05)
    lines = log.splitlines()
    assert any('"GET /ws HTTP/1.1" 101 ' in line for line in lines), log
    assert any('"POST /rooms/join HTTP/1.1" 200 ' in line for line in lines), log
    assert token not in log and token.split(".")[-1] not in log
    assert "token=" not in log and body["roomId"] not in log, log
