"""Every collector the service exports, in one place, behind intent-named methods.

Labels stay low-cardinality (message type, outcome, reason, close code, join path):
never a room or client id. The registry is injected so each test gets a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

MESSAGE_TYPES = ("offer", "answer", "ice-candidate")
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class SignalingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None, version: str = "0") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._clients = Gauge("signaling_connected_clients", "WebSocket clients joined to a room", registry=r)
        self._rooms = Gauge("signaling_rooms", "Live room actors", registry=r)
        self._joins = Counter(
            "signaling_joins_total", "Join attempts by path (rest, ws) and outcome (ok or error code)",
            ["path", "outcome"], registry=r,
        )
        self._messages = Counter(
            "signaling_messages_total",
            "Signaling frames by type and outcome (delivered, held, rejected) with the reason when not delivered",
            ["type", "outcome", "reason"], registry=r,
        )
        self._frame_errors = Counter(
            "signaling_frame_errors_total", "Inbound frames answered with an error frame, by error code",
            ["code"], registry=r,
        )
        self._closes = Counter("signaling_closes_total", "Connections closed by the server, by close code", ["code"], registry=r)
        self._outbound_dropped = Counter(
            "signaling_outbound_dropped_total",
            "Frames for a client that could not be written (connection-closed, slow-reader)",
            ["reason"], registry=r,
        )
        self._room_failures = Counter("signaling_room_failures_total", "Room actors that crashed", registry=r)
        self._held_expired = Counter(
            "signaling_held_expired_total", "Frames held for a REST stub that expired before its WebSocket came",
            registry=r,
        )
        self._frames_in = Counter(
            "signaling_frames_received_total", "Inbound WebSocket frames by message type ('invalid' when unparseable)",
            ["type"], registry=r,
        )
        self._slow_readers = Counter(
            "signaling_slow_reader_disconnects_total", "Clients closed because their outbound queue filled up",
            registry=r,
        )
        self._room_peak = Histogram(
            "signaling_room_peak_members", "Most members a room had at once, observed when the room closes",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64), registry=r,
        )
        self._call_setup = Histogram(
            "signaling_call_setup_seconds", "Offer relayed to the answer delivered back, per pair of peers",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r,
        )
        self._mailbox = Gauge(
            "signaling_room_mailbox_max_depth", "Messages waiting in the fullest room mailbox (at scrape time)",
            registry=r,
        )
        self._relay_latency = Histogram(
            "signaling_relay_latency_seconds", "Frame received to frame handed to the receiver's socket",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        Info("signaling_build", "Version of the signaling service", registry=r).info({"version": version})
        for t in MESSAGE_TYPES:
            self._messages.labels(t, "delivered", "")
            self._frames_in.labels(t)
        self._frames_in.labels("invalid")
        for path in ("rest", "ws"):
            self._joins.labels(path, "ok")

    def client_connected(self) -> None:
        self._clients.inc()

    def client_disconnected(self) -> None:
        self._clients.dec()

    def room_opened(self) -> None:
        self._rooms.inc()

    def room_closed(self) -> None:
        self._rooms.dec()

    def room_failed(self) -> None:
        self._room_failures.inc()

    def join(self, path: str, outcome: str) -> None:
        self._joins.labels(path, outcome).inc()

    def message(self, type_: str, outcome: str, reason: str = "", count: int = 1) -> None:
        self._messages.labels(type_, outcome, reason).inc(count)

    def frame_error(self, code: str) -> None:
        self._frame_errors.labels(code).inc()

    def closed(self, code: int) -> None:
        self._closes.labels(str(code)).inc()

    def outbound_dropped(self, reason: str) -> None:
        self._outbound_dropped.labels(reason).inc()

    def frame_received(self, type_: str) -> None:
        self._frames_in.labels(type_).inc()

    def slow_reader_disconnected(self) -> None:
        self._slow_readers.inc()

    def room_peak_members(self, count: int) -> None:
        self._room_peak.observe(count)

    def call_setup(self, seconds: float) -> None:
        self._call_setup.observe(seconds)

    def watch_mailboxes(self, deepest: Callable[[], int]) -> None:
        """``deepest`` is called at scrape time, on the loop thread that serves /metrics."""
        self._mailbox.set_function(deepest)

    def held_expired(self, count: int) -> None:
        if count:
            self._held_expired.inc(count)

    def relay_latency(self, seconds: float) -> None:
        self._relay_latency.observe(seconds)
