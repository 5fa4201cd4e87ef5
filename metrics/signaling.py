"""Every collector the service exports, in one place, behind intent-named methods.

Conventions (https://prometheus.io/docs/practices/naming/): the ``signaling_`` prefix,
base units in the name (``_seconds``), ``_total`` only on counters, and labels of low
cardinality only (message type, outcome, reason, error code, close code, join path):
never a room or client id. The registry is injected, so each test gets a fresh one.

Every label value the service can produce is initialised up front, so its series exist
(at 0) from the first scrape: ``rate()`` and the alert rules in deploy/prometheus/ see a
counter start from zero instead of appearing with its first increment. The known values
are listed here rather than imported from actors/ (metrics/ depends on nothing of ours);
tests/metrics/ checks them against actors.errors so they cannot drift apart.

No ``_created`` series: prometheus-client's own Counter and Histogram add one per child,
which doubles the series count and that nobody queries. The collectors of
metrics/loop_collectors.py make none, and every collector here is registered through a
filter that drops them, per registry, rather than with
``prometheus_client.disable_created_metrics()``, which flips a process-global switch
(main() calls it as well; that is harmless).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from prometheus_client import CollectorRegistry, Gauge, Info
from prometheus_client.metrics_core import Metric

from metrics.loop_collectors import LoopCounter, LoopGauge, LoopHistogram


class Collector(Protocol):
    def describe(self) -> Iterable[Metric]: ...

    def collect(self) -> Iterable[Metric]: ...


_M = TypeVar("_M", bound=Collector)

# -- the label values the service produces (kept in step with actors/errors.py by a test) --

MESSAGE_TYPES = ("offer", "answer", "ice-candidate")
JOIN_PATHS = ("rest", "ws")
# "ok" or the JoinRefused code the join was refused with.
JOIN_OUTCOMES = (
    "ok",
    "invalid-request",
    "unauthorized",
    "forbidden",
    "client-id-taken",
    "room-full",
    "server-full",
    "shutting-down",
    "room-failed",
    "rate-limited",
    "room-moved",
)
# What became of a relayed frame (RoomState.relay; the transport adds room-failed).
DELIVERED, HELD, REJECTED = "delivered", "held", "rejected"
REJECT_REASONS = ("stale-sender", "no-recipients", "unknown-peer", "peer-queue-full", "room-failed", "room-moved")
# Frames the transport answers with an error frame before they reach a room.
FRAME_ERROR_CODES = (
    "invalid-json",
    "invalid-message",
    "binary-not-supported",
    "frame-too-large",
    "from-mismatch",
    "rate-limited",
)
# Close codes the server sends: shutdown, rate limit, slow reader, join refusals,
# replaced, room failed.
CLOSE_CODES = (1001, 1008, 1013, 4400, 4401, 4403, 4409, 4410, 4429, 4500, 4502, 4503)
# Closes Tornado makes on its own, counted under the same metric: 1000 "ping timed out"
# (the code Tornado sends), 1009 a frame over the hard cap, and 1002 for a connection it
# drops without a close frame for a protocol violation (a text frame that is not UTF-8,
# reserved bits, a fragmented control frame).
TORNADO_CLOSE_CODES = (1000, 1002, 1009)
# The one thing that became of each inbound frame handed to a room (a broadcast counts once).
RELAY_OUTCOMES = (DELIVERED, HELD, REJECTED)
# Inbound frames neither answered nor handed to a room: they arrived on a socket whose
# join was refused (Tornado reads frames until the close handshake ends).
INBOUND_DROP_REASONS = ("join-refused",)
OUTBOUND_DROP_REASONS = ("connection-closed", "slow-reader")
# How a dropped client's seat ended: it came back in time, or its grace ran out.
SEAT_OUTCOMES = ("resumed", "expired")

# Relaying is a dict lookup and a buffered write on one loop: well under a millisecond
# when healthy, so the buckets are fine at the bottom and reach 1 s for a stalled loop.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Offer to answer includes the answering browser's getUserMedia/ICE gathering work.
CALL_SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
ROOM_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)


class _WithoutCreated:
    """Serves the wrapped collectors' samples minus their ``_created`` series.

    Registered once in the injected registry in place of the collectors themselves, so
    the filter applies to every exposition format (text and OpenMetrics) and to
    ``registry.get_sample_value`` alike, without touching process-global state.
    """

    def __init__(self, collectors: Sequence[Collector]) -> None:
        self._collectors = tuple(collectors)

    def describe(self) -> Iterable[Metric]:
        # Lets the registry refuse a second SignalingMetrics on the same registry.
        return [family for c in self._collectors for family in c.describe()]

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            for family in collector.collect():  # a fresh Metric per collect(): ours to trim
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield family


class SignalingMetrics:
    """What every layer counts. Methods are called on the IOLoop thread only (handlers
    and loop-hosted actors both), which also serves /metrics: the counters, histograms
    and up-down gauges are plain numbers (metrics/loop_collectors.py). Gauges read at
    scrape time and the build info stay prometheus-client's own."""

    def __init__(self, registry: CollectorRegistry | None = None, version: str = "0") -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        own: list[Collector] = []

        def add(metric: _M) -> _M:
            own.append(metric)
            return metric

        # Created with registry=None: _WithoutCreated registers them all at the end.
        self._clients = add(LoopGauge("signaling_connected_clients", "WebSocket clients currently joined to a room"))
        self._rooms = add(LoopGauge("signaling_rooms", "Room actors currently live"))
        self._joins = add(
            LoopCounter(
                "signaling_joins_total",
                "Join attempts by path (rest: POST /rooms/join, ws: WebSocket) and outcome (ok or the refusal code)",
                ["path", "outcome"],
            )
        )
        self._frames_in = add(
            LoopCounter(
                "signaling_frames_received_total",
                "Inbound WebSocket frames by message type ('invalid' when they failed to parse, 'unparsed' when "
                "refused before parsing: rate-limited, or on a socket whose join was refused)",
                ["type"],
            )
        )
        self._messages = add(
            LoopCounter(
                "signaling_messages_total",
                "Relayed signaling messages by type and outcome: delivered (one per receiver), held for a peer "
                "whose WebSocket has not arrived, or rejected (with the reason)",
                ["type", "outcome", "reason"],
            )
        )
        self._frame_errors = add(
            LoopCounter(
                "signaling_frame_errors_total",
                "Inbound frames answered with an error frame before reaching a room, by error code",
                ["code"],
            )
        )
        self._closes = add(
            LoopCounter(
                "signaling_closes_total",
                "WebSocket connections closed by the server, by close code",
                ["code"],
            )
        )
        self._relayed = add(
            LoopCounter(
                "signaling_relayed_frames_total",
                "Inbound frames handed to a room, by what became of each: delivered (to at least one member), "
                "held, or rejected (signaling_messages_total has the reason)",
                ["outcome"],
            )
        )
        self._inbound_dropped = add(
            LoopCounter(
                "signaling_inbound_dropped_total",
                "Inbound frames neither answered nor handed to a room, by reason (join-refused)",
                ["reason"],
            )
        )
        self._proxy_headers = add(
            LoopCounter(
                "signaling_untrusted_proxy_headers_total",
                "Requests (REST joins, WebSocket upgrades) carrying X-Real-IP or X-Forwarded-For while "
                "--trust-proxy is off: the header was ignored, the client IP is the TCP peer's",
            )
        )
        self._outbound_dropped = add(
            LoopCounter(
                "signaling_outbound_dropped_total",
                "Frames for a client that could not be written, by reason (connection-closed, slow-reader)",
                ["reason"],
            )
        )
        self._slow_readers = add(
            LoopCounter(
                "signaling_slow_reader_disconnects_total",
                "Clients closed (1013) because their outbound buffer filled up",
            )
        )
        self._drops = add(
            LoopCounter(
                "signaling_abnormal_disconnects_total",
                "Clients whose connection ended without a close handshake (network loss, ping timeout); "
                "their seat is held for the reconnect grace",
            )
        )
        self._seats = add(
            LoopCounter(
                "signaling_held_seats_total",
                "How held seats ended: resumed (the client came back in time) or expired (peer-left sent)",
                ["outcome"],
            )
        )
        self._replaced = add(
            LoopCounter(
                "signaling_replaced_connections_total",
                "Connections taken over (4410) by a newer connection of the same client with a valid token",
            )
        )
        self._held_expired = add(
            LoopCounter(
                "signaling_held_expired_total",
                "Held frames dropped because their receiver's seat expired before its WebSocket came",
            )
        )
        self._room_failures = add(
            LoopCounter(
                "signaling_room_failures_total",
                "Room actors that crashed (their clients were closed with 4500)",
            )
        )
        self._room_peak = add(
            LoopHistogram(
                "signaling_room_peak_members",
                "Most members a room had at once, observed when the room closes",
                buckets=ROOM_SIZE_BUCKETS,
            )
        )
        self._relay_latency = add(
            LoopHistogram(
                "signaling_relay_latency_seconds",
                "Time from a frame being received to it being handed to the receiver's socket",
                buckets=LATENCY_BUCKETS,
            )
        )
        self._call_setup = add(
            LoopHistogram(
                "signaling_call_setup_seconds",
                "Time from an offer being received to its answer being delivered back, per pair of peers",
                buckets=CALL_SETUP_BUCKETS,
            )
        )
        self._mailbox = add(
            Gauge(
                "signaling_room_mailbox_max_depth",
                "Messages waiting in the fullest room mailbox, at scrape time",
                registry=None,
            )
        )
        self._hub_mailbox = add(
            Gauge(
                "signaling_hub_mailbox_depth",
                "Messages waiting in the Hub's mailbox (every join passes it), at scrape time",
                registry=None,
            )
        )
        # Leak watch (issue 10): each should return to its idle value when the load stops.
        self._actors = add(
            Gauge(
                "signaling_actors",
                "Actors started and not yet torn down (the Hub plus one per live room), at scrape time",
                registry=None,
            )
        )
        self._threads = add(Gauge("signaling_threads", "Threads in the process, at scrape time", registry=None))
        self._build = add(Info("signaling_build", "Version of the signaling service", registry=None))
        self._build.info({"version": version})

        for path in JOIN_PATHS:
            for outcome in JOIN_OUTCOMES:
                self._joins.labels(path, outcome)
        for type_ in MESSAGE_TYPES:
            self._frames_in.labels(type_)
            self._messages.labels(type_, DELIVERED, "")
            self._messages.labels(type_, HELD, "")
            for reason in REJECT_REASONS:
                self._messages.labels(type_, REJECTED, reason)
        self._frames_in.labels("invalid")
        self._frames_in.labels("unparsed")
        for outcome in RELAY_OUTCOMES:
            self._relayed.labels(outcome)
        for reason in INBOUND_DROP_REASONS:
            self._inbound_dropped.labels(reason)
        for code in FRAME_ERROR_CODES:
            self._frame_errors.labels(code)
        for close_code in (*CLOSE_CODES, *TORNADO_CLOSE_CODES):
            self._closes.labels(str(close_code))
        for outcome in SEAT_OUTCOMES:
            self._seats.labels(outcome)
        for reason in OUTBOUND_DROP_REASONS:
            self._outbound_dropped.labels(reason)

        self.registry.register(_WithoutCreated(own))

    # -- connections and rooms --

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

    def room_peak_members(self, count: int) -> None:
        self._room_peak.observe(count)

    def join(self, path: str, outcome: str) -> None:
        """``path`` is rest or ws; ``outcome`` is ok or the JoinRefused code."""
        self._joins.labels(path, outcome).inc()

    def closed(self, code: int) -> None:
        self._closes.labels(str(code)).inc()

    # -- frames and messages --

    def frame_received(self, type_: str) -> None:
        self._frames_in.labels(type_).inc()

    def frame_error(self, code: str) -> None:
        self._frame_errors.labels(code).inc()

    def message(self, type_: str, outcome: str, reason: str = "", count: int = 1) -> None:
        self._messages.labels(type_, outcome, reason).inc(count)

    def frame_relayed(self, outcome: str, count: int = 1) -> None:
        """One per inbound frame a room handled (or could not: rejected), whatever its fan-out."""
        self._relayed.labels(outcome).inc(count)

    def inbound_dropped(self, reason: str) -> None:
        self._inbound_dropped.labels(reason).inc()

    def untrusted_proxy_header(self) -> None:
        self._proxy_headers.inc()

    def relay_latency(self, seconds: float) -> None:
        self._relay_latency.observe(seconds)

    def call_setup(self, seconds: float) -> None:
        self._call_setup.observe(seconds)

    def abnormal_disconnect(self) -> None:
        self._drops.inc()

    def held_seat_ended(self, outcome: str) -> None:
        self._seats.labels(outcome).inc()

    def connection_replaced(self) -> None:
        self._replaced.inc()

    def held_expired(self, count: int) -> None:
        if count:
            self._held_expired.inc(count)

    # -- backpressure --

    def outbound_dropped(self, reason: str, frames: int = 1) -> None:
        self._outbound_dropped.labels(reason).inc(frames)

    def slow_reader_disconnected(self) -> None:
        self._slow_readers.inc()

    def watch_mailboxes(self, deepest: Callable[[], int], hub: Callable[[], int]) -> None:
        """Both are called at scrape time, on the loop thread that serves /metrics."""
        self._mailbox.set_function(deepest)
        self._hub_mailbox.set_function(hub)

    def watch_runtime(self, actors: Callable[[], int], threads: Callable[[], int]) -> None:
        """Both are called at scrape time, on the loop thread that serves /metrics."""
        self._actors.set_function(actors)
        self._threads.set_function(threads)


# -- cluster mode (--redis): registered only when it is on, so one process exports none --

CLUSTER_DIRECTIONS = ("sent", "received")
# Why a cross-backend message was not delivered (docs/cluster.md).
CLUSTER_DROP_REASONS = (
    "link-down",
    "publish-failed",
    "no-subscriber",
    "stale-epoch",
    "unknown-attachment",
    "malformed",
)
LEASE_EVENTS = ("claimed", "released", "lost", "renew-failed")
REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class ClusterMetrics:
    """What the Redis link counts; called on the loop thread (transport/cluster.py)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        own: list[Collector] = []

        def add(metric: _M) -> _M:
            own.append(metric)
            return metric

        self._frames = add(
            LoopCounter(
                "signaling_cluster_frames_total",
                "Messages between backends through Redis (frames relayed for a client on another backend, and "
                "their joins and leaves), by direction: sent or received",
                ["direction"],
            )
        )
        self._dropped = add(
            LoopCounter(
                "signaling_cluster_frames_dropped_total",
                "Cross-backend messages not delivered, by reason (link-down, publish-failed, no-subscriber, "
                "stale-epoch, unknown-attachment, malformed); the affected clients are closed with 4502",
                ["reason"],
            )
        )
        self._leases = add(
            LoopCounter(
                "signaling_cluster_lease_events_total",
                "Room lease events on this backend: claimed, released, lost (taken over or expired unrenewed), "
                "renew-failed (Redis unreachable while the lease was valid)",
                ["event"],
            )
        )
        self._leases_held = add(Gauge("signaling_cluster_leases", "Room leases this backend holds", registry=None))
        self._roundtrip = add(
            LoopHistogram(
                "signaling_redis_roundtrip_seconds",
                "Time from sending a command or pipeline to Redis to its answer",
                buckets=REDIS_BUCKETS,
            )
        )
        self._up = add(
            Gauge(
                "signaling_redis_up",
                "1 while this backend's Redis link (commands and its channel) is up, else 0",
                registry=None,
            )
        )
        for direction in CLUSTER_DIRECTIONS:
            self._frames.labels(direction)
        for reason in CLUSTER_DROP_REASONS:
            self._dropped.labels(reason)
        for event in LEASE_EVENTS:
            self._leases.labels(event)
        self._sent = self._frames.labels("sent")
        self._received = self._frames.labels("received")
        registry.register(_WithoutCreated(own))

    def sent(self, count: int = 1) -> None:
        self._sent.inc(count)

    def received(self) -> None:
        self._received.inc()

    def dropped(self, reason: str, count: int = 1) -> None:
        self._dropped.labels(reason).inc(count)

    def lease(self, event: str) -> None:
        self._leases.labels(event).inc()

    def watch_leases(self, count: Callable[[], int]) -> None:
        self._leases_held.set_function(count)

    def roundtrip(self, seconds: float) -> None:
        self._roundtrip.observe(seconds)

    def redis_up(self, up: bool) -> None:
        self._up.set(1 if up else 0)
