"""Helpers shared by the tests: real servers on 127.0.0.1 and real WebSocket clients.

Frames, URLs and the process launcher come from loadtests/ (wire.py, launch.py),
shared with the load tools; this module adds the Tornado client and in-process server.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

from loadtests import wire
from loadtests.launch import Launched, launch
from loadtests.wire import sample_data
from transport.server import Server, new_registry
from transport.settings import Settings

TIMEOUT_FACTOR = float(os.environ.get("SIGNALING_TEST_TIMEOUT_FACTOR", "1"))


def scaled(seconds: float) -> float:
    """Every wait in the tests goes through this, so slow CI machines can scale them all."""
    return seconds * TIMEOUT_FACTOR


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"port": 0, "metrics_port": 0, "shutdown_timeout": scaled(5)}
    values.update(overrides)
    return Settings(**values)


# The ``make_server`` fixture (tests/conftest.py): start a server with setting overrides.
ServerFactory = Callable[..., Awaitable[Server]]


@asynccontextmanager
async def running_server(**overrides: Any) -> AsyncIterator[Server]:
    """The whole service in this process, on this loop, on free ports of 127.0.0.1."""
    server = Server(make_settings(**overrides), registry=new_registry())
    await server.start()
    try:
        yield server
    finally:
        await server.shutdown()


class Closed(Exception):
    def __init__(self, code: int | None, reason: str | None) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason


@dataclass
class Client:
    conn: WebSocketClientConnection
    client_id: str

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.conn.read_message(), scaled(timeout))
        if message is None:
            raise Closed(self.conn.close_code, self.conn.close_reason)
        assert isinstance(message, str)
        return json.loads(message)

    async def recv_type(self, type_: str, timeout: float = 5.0) -> dict[str, Any]:
        frame = await self.recv(timeout)
        assert frame["type"] == type_, frame
        return frame

    async def closed(self, timeout: float = 5.0) -> tuple[int | None, str | None]:
        """Wait for the server to close us (skipping frames); returns (code, reason)."""
        deadline = time.monotonic() + scaled(timeout)
        while True:
            remaining = deadline - time.monotonic()
            message = await asyncio.wait_for(self.conn.read_message(), max(remaining, 0.01))
            if message is None:
                return self.conn.close_code, self.conn.close_reason

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        text = frame if isinstance(frame, (str, bytes)) else json.dumps(frame)
        self.conn.write_message(text, binary=isinstance(text, bytes))

    def signal(self, type_: str, to: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.send(wire.signal(type_, to, data if data is not None else sample_data(type_)))

    def close(self) -> None:
        self.conn.close()


async def connect(server: Server, room: str, client: str, token: str | None = None, **headers: str) -> Client:
    request = HTTPRequest(wire.ws_url(server.port, room, client, token), headers=headers or None)
    conn = await asyncio.wait_for(websocket_connect(request), scaled(5))
    return Client(conn, client)


async def join(server: Server, room: str, client: str, token: str | None = None) -> tuple[Client, list[str]]:
    """Connect and read the ``joined`` frame; returns the client and its peer list."""
    c = await connect(server, room, client, token)
    frame = await c.recv_type("joined")
    assert frame["data"]["roomId"] == room and frame["data"]["clientId"] == client
    return c, frame["data"]["peers"]


async def http(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    port: int | None = None,
    **headers: str,
) -> tuple[int, Any]:
    """One HTTP request to the server; returns (status, parsed JSON or text)."""
    response = await fetch(server, method, path, body, raw, port, **headers)
    text = response.body.decode() if response.body else ""
    try:
        return response.code, json.loads(text)
    except ValueError:
        return response.code, text


async def fetch(
    server: Server,
    method: str,
    path: str,
    body: Any = None,
    raw: bytes | None = None,
    port: int | None = None,
    **headers: str,
) -> HTTPResponse:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if method == "POST" and data is None:
        data = b""
    request = HTTPRequest(
        f"http://127.0.0.1:{port or server.port}{path}",
        method=method,
        body=data,
        headers=headers or None,
        request_timeout=scaled(5),
    )
    return await AsyncHTTPClient().fetch(request, raise_error=False)


# -- the service as a real process (console script), for signals and end-to-end runs --

ServerProcess = Launched


@contextmanager
def server_process(*args: str, env: dict[str, str] | None = None) -> Iterator[Launched]:
    """Run ``signaling-server`` on free ports; yields once it is listening; always kills it."""
    with launch(*args, env=env, timeout=scaled(15), kill_after=0) as server:
        yield server
