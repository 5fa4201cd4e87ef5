"""A blocking signaling client over websocket-client, on wire.py's frames.

Blocking socket I/O, which locust's gevent monkey-patching makes cooperative (so
hundreds of locust users share one process: wsuser.py), and which a plain test can
drive without a loop (tests/transport/test_fuzz.py). No gevent or locust here.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import websocket

try:
    from loadtests import wire
except ImportError:  # loaded by locust from loadtests/ (locustfile.py puts it on sys.path)
    import wire  # type: ignore[no-redef]

UnexpectedFrame = wire.UnexpectedFrame


class FrameTimeout(Exception):
    pass


class ConnectionLost(Exception):
    pass


class Peer:
    """One signaling WebSocket: send frames, receive the next frame with a timeout."""

    def __init__(self, ws: websocket.WebSocket, room_id: str, client_id: str) -> None:
        self.ws = ws
        self.room_id = room_id
        self.client_id = client_id
        self.peers: list[str] = []

    @classmethod
    def join(
        cls,
        base: str | int,
        room_id: str,
        client_id: str,
        token: str | None = None,
        connect_timeout: float = 10.0,
        frame_timeout: float = 5.0,
    ) -> Peer:
        """Connect (``base``: a port of 127.0.0.1 or an http(s) URL) and read the ``joined`` frame."""
        ws = websocket.create_connection(
            wire.ws_url(base, room_id, client_id, token), timeout=connect_timeout, enable_multithread=False
        )
        peer = cls(ws, room_id, client_id)
        try:
            data = peer.expect("joined", timeout=frame_timeout)["data"]
            if data["roomId"] != room_id or data["clientId"] != client_id:
                raise UnexpectedFrame(f"joined frame for another client: {data}")
        except BaseException:
            peer.close()
            raise
        peer.peers = list(data["peers"])
        return peer

    def send_raw(self, payload: str | bytes) -> int:
        try:
            if isinstance(payload, bytes):
                self.ws.send_binary(payload)
            else:
                self.ws.send(payload)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc
        return len(payload)

    def send(self, type_: str, to: str | None, data: dict[str, Any]) -> int:
        return self.send_raw(wire.encode(wire.signal(type_, to, data)))

    def send_frame(self, frame: wire.Frame) -> int:
        return self.send_raw(wire.encode(frame))

    def recv(self, timeout: float = 5.0) -> wire.Frame:
        """The next frame, whatever it is (error frames included)."""
        self.ws.settimeout(timeout)
        try:
            text = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            raise FrameTimeout(f"no frame within {timeout:g}s") from None
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"{exc}") from exc
        if not text:
            raise ConnectionLost(f"closed by the server ({self.ws.status})")
        frame: wire.Frame = json.loads(text)
        return frame

    def expect(self, type_: str, sender: str | None = None, timeout: float = 5.0, data: Any = None) -> wire.Frame:
        """The next frame of ``type_`` (from ``sender``); presence frames on the way are skipped,
        anything else (an error frame too) is an UnexpectedFrame."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self.recv(max(deadline - time.monotonic(), 0.001))
            except FrameTimeout:
                raise FrameTimeout(f"no {type_} frame within {timeout:g}s") from None
            if frame.get("type") == type_ or not wire.is_presence(frame):
                return wire.check(frame, type_, sender, data)

    def ping(self, timeout: float = 5.0) -> None:
        """A WebSocket ping answered by a pong: proves an idle connection still works."""
        payload = uuid.uuid4().hex[:8].encode()
        self.ws.settimeout(timeout)
        try:
            self.ws.ping(payload)
            while True:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_PONG and frame.data == payload:
                    return
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    raise ConnectionLost("closed by the server")
        except websocket.WebSocketTimeoutException:
            raise FrameTimeout(f"no pong within {timeout:g}s") from None
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"{exc}") from exc

    def close(self) -> None:
        try:
            self.ws.close(timeout=1)
        except Exception:  # closing a broken socket may fail any way; it is closed after
            self.ws.shutdown()


def run_phase(phase: wire.Phase, peers: dict[str, Peer], timeout: float = 5.0) -> None:
    """One phase of a wire.py scenario on these peers ("a", "b")."""
    for step in phase.steps:
        peer = peers[step.peer]
        if isinstance(step, wire.Send):
            peer.send_frame(step.frame)
        elif isinstance(step, wire.Expect):
            peer.expect(step.type, step.sender, timeout, step.data)
        else:
            peer.close()
