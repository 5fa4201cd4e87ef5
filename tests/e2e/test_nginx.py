"""The shipped nginx config in front of a real server process, with real nginx."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ServerProcess, connect, fetch, http, join, scaled, server_process

CONFIG = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "signaling.conf"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Nginx:
    """Stands in for the server object the helpers take: they only read ``port``."""

    def __init__(self, port: int, access_log: Path) -> None:
        self.port = port
        self.access_log = access_log


@pytest.fixture
def nginx_in_front(tmp_path: Path) -> Iterator[tuple[Nginx, ServerProcess]]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).exists():
        pytest.fail("nginx is not installed (.ci/run installs it)")
    with server_process("--trust-proxy", "--max-connections-per-ip", "2") as backend:
        port = free_port()
        site = CONFIG.read_text().replace("127.0.0.1:8080", f"127.0.0.1:{backend.port}")
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
        access_log = tmp_path / "signaling-access.log"
        assert "/var/log/nginx/signaling-access.log" in site
        site = site.replace("/var/log/nginx/signaling-access.log", str(access_log))
        (tmp_path / "site.conf").write_text(site)
        (tmp_path / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/site.conf;
}}
""")
        check = subprocess.run(
            [binary, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=scaled(30),
        )
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(
            [binary, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")], stderr=subprocess.DEVNULL
        )
        try:
            wait_for_port(port)
            yield Nginx(port, access_log), backend
        finally:
            proc.terminate()
            proc.wait(timeout=scaled(10))


def wait_for_port(port: int) -> None:
    import time

    deadline = time.monotonic() + scaled(10)
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)  # nginx gives no readiness signal but the open port
    raise AssertionError("nginx did not start")


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
