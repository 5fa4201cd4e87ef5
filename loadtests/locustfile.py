"""Locust scenarios for the signaling service: call-setup churn, steady relay, idle holders.

Run headless against a server (see loadtests/README.md)::

    locust -f loadtests/locustfile.py --headless -u 100 -r 20 -t 1m \\
        --host http://127.0.0.1:8080 --csv out/run

Pick scenarios by class name (``CallSetupUser RelayUser IdleUser``) or let the
weights mix them. Every user owns both peers of its rooms (two sockets), so no
pairing between users is needed: the same file works in one process and with
distributed workers. Tuning through environment variables:

- ``LOCUST_FRAME_TIMEOUT`` (5): seconds a frame may take before the step fails;
- ``LOCUST_CALL_DEADLINE`` (30): seconds a whole call setup may take;
- ``LOCUST_RELAY_RATE`` (5): frames per second each RelayUser sends;
- ``LOCUST_RELAY_BYTES`` (1024): size of the relayed SDP;
- ``LOCUST_IDLE_PING`` (10): seconds between an IdleUser's pings;
- ``LOCUST_API_KEY``: bearer key for ``POST /rooms/join`` when the server is in token mode.
"""

from __future__ import annotations

import os
import sys

from locust import between, constant, constant_throughput, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import wire
from wsclient import run_phase
from wsuser import FRAME_TIMEOUT, Peer, SignalingUser, close_all

CALL_DEADLINE = float(os.environ.get("LOCUST_CALL_DEADLINE", "30"))
RELAY_RATE = float(os.environ.get("LOCUST_RELAY_RATE", "5"))
RELAY_BYTES = int(os.environ.get("LOCUST_RELAY_BYTES", "1024"))
IDLE_PING = float(os.environ.get("LOCUST_IDLE_PING", "10"))


class CallSetupUser(SignalingUser):
    """Churn: REST join x2, two WebSockets, offer/answer, 10 candidates each way, leave.

    ``offer->answer`` is the call-setup response time: offer sent to answer received.
    """

    weight = 1
    wait_time = between(0.5, 1.5)

    @task
    def call(self) -> None:
        with self.scenario("call", CALL_DEADLINE) as peers:
            a, b = self.open_pair(peers)
            offer, answer = wire.sdp("offer", RELAY_BYTES), wire.sdp("answer", RELAY_BYTES)
            sockets = {"a": a, "b": b}
            # wire.py's call setup: "offer->answer", "ice 10+10", then "leave", each timed.
            for phase in wire.negotiation(a.client_id, b.client_id, offer, answer):
                with self.measure(phase.name):
                    run_phase(phase, sockets, FRAME_TIMEOUT)
            peers.remove(a)  # closed by the leave phase
            with self.measure("leave"):
                run_phase(wire.leave(a.client_id), sockets, FRAME_TIMEOUT)


class RelayUser(SignalingUser):
    """Steady relay: one pair held open, ~1 KB offers back and forth at a fixed rate."""

    weight = 1
    wait_time = constant_throughput(RELAY_RATE)

    def on_start(self) -> None:
        super().on_start()
        self.peers: list[Peer] = []
        self.pair: tuple[Peer, Peer] | None = None
        self.seq = 0

    def on_stop(self) -> None:
        close_all(self.peers)

    @task
    def relay(self) -> None:
        with self.scenario("relay", CALL_DEADLINE, self.peers, keep=True):
            if not self.peers:
                self.pair = self.open_pair(self.peers)
            assert self.pair is not None
            self.seq += 1
            sender, receiver = self.pair if self.seq % 2 else self.pair[::-1]
            with self.measure("relay 1KB"):
                data = wire.description("offer", wire.sdp("relay", RELAY_BYTES, self.seq))
                sender.send("offer", receiver.client_id, data)
                receiver.expect("offer", sender.client_id, FRAME_TIMEOUT, data)


class IdleUser(SignalingUser):
    """Idle holder: one connection kept open; a WebSocket ping now and then proves it is alive.

    Reading the pong also answers the server's own keepalive pings.
    """

    weight = 2
    wait_time = constant(IDLE_PING)

    def on_start(self) -> None:
        super().on_start()
        self.peers: list[Peer] = []

    def on_stop(self) -> None:
        close_all(self.peers)

    @task
    def hold(self) -> None:
        with self.scenario("idle", CALL_DEADLINE, self.peers, keep=True):
            if not self.peers:
                self.open_peer(self.rest_join(), self.peers)
            with self.measure("idle ping"):
                self.peers[0].ping(FRAME_TIMEOUT)
