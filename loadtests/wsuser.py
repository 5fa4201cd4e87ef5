"""A locust User that speaks the signaling WebSocket protocol (wsclient.Peer, wire.py's frames).

wsclient.py does blocking socket I/O, which locust's gevent monkey-patching makes
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

import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from locust import FastHttpUser
from wsclient import FrameTimeout, Peer, UnexpectedFrame

# Everything a scenario needs, from one import (locustfile.py).
__all__ = ["FrameTimeout", "Peer", "SignalingUser", "StepFailed", "UnexpectedFrame", "close_all", "new_id"]

FRAME_TIMEOUT = float(os.environ.get("LOCUST_FRAME_TIMEOUT", "5"))
CONNECT_TIMEOUT = float(os.environ.get("LOCUST_CONNECT_TIMEOUT", "10"))
# An API key for POST /rooms/join when the server runs in token mode.
API_KEY = os.environ.get("LOCUST_API_KEY", "")


class StepFailed(Exception):
    """A step failed and its failure event has been fired: abandon the scenario quietly."""


def close_all(peers: list[Peer]) -> None:
    while peers:
        peers.pop().close()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class SignalingUser(FastHttpUser):
    """Base class: REST join (locust's own HTTP events), WebSocket peers, timed steps."""

    abstract = True

    def on_start(self) -> None:
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
    def scenario(
        self, name: str, deadline: float, peers: list[Peer] | None = None, keep: bool = False
    ) -> Iterator[list[Peer]]:
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
        with self.client.post(
            f"/rooms/{room_id}/join", json={}, headers=headers, name="POST /rooms/[id]/join", catch_response=True
        ) as response:
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
        with self.measure("connect"):
            peer = Peer.join(
                self.host, joined["roomId"], joined["clientId"], joined.get("token"), CONNECT_TIMEOUT, FRAME_TIMEOUT
            )
            peers.append(peer)
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
            a.expect("peer-joined", timeout=FRAME_TIMEOUT, data={"clientId": b.client_id})
        return a, b
