"""A locust User that speaks the signaling WebSocket protocol over websocket-client.

websocket-client does blocking socket I/O, which locust's gevent monkey-patching makes
cooperative, so hundreds of these users share one locust process. Every step of a
scenario is timed with ``measure()``, which fires a locust request event: a success
with its response time, or a failure carrying the exception.

Two kinds of timeout end a step as a failure:

- a frame that does not arrive within ``FRAME_TIMEOUT`` seconds (``FrameTimeout``,
  an ordinary Exception raised from the socket timeout);
- the whole scenario overrunning its deadline, enforced with a ``gevent.Timeout``.
  ``gevent.Timeout`` derives from ``BaseException``, not ``Exception``: ``measure()``
  and ``scenario()`` name it explicitly, because an ``except Exception`` catch-all
  would let it fly past without a failure being recorded.

``GreenletExit`` (locust stopping a user at the end of a run) is deliberately not
caught: an interrupted step is not a failure of the server.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import gevent
import websocket
from locust import FastHttpUser

FRAME_TIMEOUT = float(os.environ.get("LOCUST_FRAME_TIMEOUT", "5"))
CONNECT_TIMEOUT = float(os.environ.get("LOCUST_CONNECT_TIMEOUT", "10"))
# An API key for POST /rooms/join when the server runs in token mode.
API_KEY = os.environ.get("LOCUST_API_KEY", "")
PRESENCE = ("peer-joined", "peer-left")


class StepFailed(Exception):
    """A step failed and its failure event has been fired: abandon the scenario quietly."""


class FrameTimeout(Exception):
    pass


class UnexpectedFrame(Exception):
    pass


class ConnectionLost(Exception):
    pass


def close_all(peers: list[Peer]) -> None:
    while peers:
        peers.pop().close()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def ws_base(host: str) -> str:
    """``http://h:p/prefix`` -> ``ws://h:p/prefix``; ``https`` -> ``wss``."""
    parts = urlsplit(host)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}[parts.scheme]
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def sdp(kind: str, size: int = 1024, seq: int = 0) -> str:
    """An SDP-like text of about ``size`` bytes."""
    head = f"v=0\r\no=- {seq} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n"
    line = f"a=x-{kind}-padding:{'x' * 60}\r\n"
    return head + line * max(0, (size - len(head)) // len(line))


def candidate(n: int) -> dict[str, Any]:
    return {"candidate": f"candidate:{n} 1 udp 2122260223 192.0.2.1 {50000 + n} typ host",
            "sdpMid": "0", "sdpMLineIndex": 0}


class Peer:
    """One signaling WebSocket: send frames, receive the next frame with a timeout."""

    def __init__(self, ws: websocket.WebSocket, room_id: str, client_id: str) -> None:
        self.ws = ws
        self.room_id = room_id
        self.client_id = client_id
        self.peers: list[str] = []

    def send(self, type_: str, to: str | None, data: dict[str, Any]) -> int:
        frame: dict[str, Any] = {"type": type_, "data": data}
        if to is not None:
            frame["to"] = to
        text = json.dumps(frame, separators=(",", ":"))
        try:
            self.ws.send(text)
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"send failed: {exc}") from exc
        return len(text)

    def recv(self, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
        self.ws.settimeout(timeout)
        try:
            text = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            raise FrameTimeout(f"no frame within {timeout:g}s") from None
        except (websocket.WebSocketException, OSError) as exc:
            raise ConnectionLost(f"{exc}") from exc
        if not text:
            raise ConnectionLost(f"closed by the server ({self.ws.status})")
        frame = json.loads(text)
        if frame.get("type") == "error":
            raise UnexpectedFrame(f"error frame {frame.get('data')}")
        return frame

    def expect(self, type_: str, sender: str | None = None, timeout: float = FRAME_TIMEOUT) -> dict[str, Any]:
        """The next frame of ``type_`` (from ``sender``); presence frames on the way are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                frame = self.recv(max(deadline - time.monotonic(), 0.001))
            except FrameTimeout:
                raise FrameTimeout(f"no {type_} frame within {timeout:g}s") from None
            if frame["type"] == type_ and (sender is None or frame.get("from") == sender):
                return frame
            if frame["type"] not in PRESENCE:
                raise UnexpectedFrame(f"wanted {type_}, got {frame['type']}")

    def ping(self, timeout: float = FRAME_TIMEOUT) -> None:
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
        except Exception:  # noqa: BLE001 - closing a broken socket may fail any way; it is closed after
            self.ws.shutdown()


class SignalingUser(FastHttpUser):
    """Base class: REST join (locust's own HTTP events), WebSocket peers, timed steps."""

    abstract = True

    def on_start(self) -> None:
        self.ws_base = ws_base(self.host)
        self._step_failed = False

    # -- events --

    def fire(self, name: str, started: float, exception: BaseException | None, length: int = 0) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Time one step; fire success, or failure and abandon the scenario."""
        started = time.perf_counter()
        try:
            yield
        except StepFailed:
            raise
        except Exception as exc:
            self._step_failed = True
            self.fire(name, started, exc)
            raise StepFailed(name) from exc
        except gevent.Timeout as timeout:  # a BaseException: `except Exception` above misses it
            self._step_failed = True
            self.fire(name, started, FrameTimeout(f"{name}: scenario deadline passed ({timeout})"))
            raise
        self.fire(name, started, None)

    @contextmanager
    def scenario(self, name: str, deadline: float, peers: list[Peer] | None = None,
                 keep: bool = False) -> Iterator[list[Peer]]:
        """Run one scenario under a deadline; yields the list of its peers.

        The peers are closed at the end, or only after a failure when ``keep`` is set
        (a user that holds its connections across tasks passes its own list).
        """
        peers = [] if peers is None else peers
        timer = gevent.Timeout(deadline)
        self._step_failed = False
        failed = True
        started = time.perf_counter()
        timer.start()
        try:
            yield peers
            failed = False
        except StepFailed:
            pass  # reported by measure()
        except gevent.Timeout as timeout:
            if timeout is not timer:
                raise  # someone else's deadline: not ours to swallow
            if not self._step_failed:
                self.fire(name, started, FrameTimeout(f"{name}: deadline of {deadline:g}s passed"))
        finally:
            timer.close()
            if failed or not keep:
                close_all(peers)

    # -- steps --

    def rest_join(self, room_id: str | None = None) -> dict[str, Any]:
        """``POST /rooms/{roomId}/join`` with a room id chosen here.

        The room id in the path (not the body) lets nginx hash the REST join to the
        same backend as the WebSocket (``/ws?roomId=``) in a multi-backend deployment.
        """
        room_id = room_id or new_id("lt")
        headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else None
        with self.client.post(f"/rooms/{room_id}/join", json={}, headers=headers, name="POST /rooms/[id]/join",
                              catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {(response.text or '')[:200]}")
                raise StepFailed("POST /rooms/join")
            try:
                answer = response.json()
                answer["roomId"], answer["clientId"], answer["token"]
            except (ValueError, KeyError, TypeError) as exc:
                response.failure(f"bad answer: {exc}")
                raise StepFailed("POST /rooms/join") from exc
            return answer

    def open_peer(self, joined: dict[str, Any], peers: list[Peer]) -> Peer:
        """WebSocket for a REST join's answer; timed until the ``joined`` frame arrives."""
        query = {"roomId": joined["roomId"], "clientId": joined["clientId"]}
        if joined.get("token"):
            query["token"] = joined["token"]
        with self.measure("connect"):
            ws = websocket.create_connection(f"{self.ws_base}/ws?{urlencode(query)}", timeout=CONNECT_TIMEOUT,
                                             enable_multithread=False)
            peer = Peer(ws, joined["roomId"], joined["clientId"])
            peers.append(peer)
            frame = peer.expect("joined")
            data = frame["data"]
            if data["roomId"] != peer.room_id or data["clientId"] != peer.client_id:
                raise UnexpectedFrame(f"joined frame for another client: {data}")
            peer.peers = list(data["peers"])
        return peer

    def open_pair(self, peers: list[Peer]) -> tuple[Peer, Peer]:
        """Two peers of a fresh room, both owned by this user: no pairing across users needed.

        The room id is random per user, so the scheme works the same inside one locust
        process and across distributed workers.
        """
        a_join = self.rest_join()
        b_join = self.rest_join(a_join["roomId"])
        a = self.open_peer(a_join, peers)
        b = self.open_peer(b_join, peers)
        with self.measure("peer-joined"):
            if b.peers != [a.client_id]:
                raise UnexpectedFrame(f"second peer saw peers {b.peers}, wanted [{a.client_id}]")
            frame = a.expect("peer-joined")
            if frame["data"]["clientId"] != b.client_id:
                raise UnexpectedFrame(f"peer-joined for {frame['data']}, wanted {b.client_id}")
        return a, b
