"""SignalingMetrics on its own: each intent method moves exactly its series.

A fresh CollectorRegistry per test (never the global one), no server, no sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from actors import errors
from metrics import signaling
from metrics.signaling import SignalingMetrics
from transport import wire_codes


@pytest.fixture
def metrics() -> SignalingMetrics:
    return SignalingMetrics(CollectorRegistry(), version="1.2.3")


def samples(registry: CollectorRegistry) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for family in registry.collect() for s in family.samples}


def moved(before: dict[Any, float], after: dict[Any, float]) -> dict[tuple[str, dict[str, str]], float]:
    """Every sample whose value changed, with the change."""
    out = {}
    for key, value in after.items():
        delta = value - before.get(key, 0.0)
        if delta:
            out[(key[0], tuple(sorted(key[1])))] = delta
    return out  # type: ignore[return-value]


def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted(labels.items()))


# (call, the only samples it must change and by how much)
INTENTS: list[tuple[str, Callable[[SignalingMetrics], None], dict[Any, float]]] = [
    ("client_connected", lambda m: m.client_connected(), {key("signaling_connected_clients"): 1}),
    ("client_disconnected", lambda m: m.client_disconnected(), {key("signaling_connected_clients"): -1}),
    ("room_opened", lambda m: m.room_opened(), {key("signaling_rooms"): 1}),
    ("room_closed", lambda m: m.room_closed(), {key("signaling_rooms"): -1}),
    ("room_failed", lambda m: m.room_failed(), {key("signaling_room_failures_total"): 1}),
    ("join ok", lambda m: m.join("ws", "ok"), {key("signaling_joins_total", path="ws", outcome="ok"): 1}),
    (
        "join refused",
        lambda m: m.join("rest", "room-full"),
        {key("signaling_joins_total", path="rest", outcome="room-full"): 1},
    ),
    (
        "message delivered to 3",
        lambda m: m.message("ice-candidate", "delivered", "", 3),
        {key("signaling_messages_total", type="ice-candidate", outcome="delivered", reason=""): 3},
    ),
    (
        "message held",
        lambda m: m.message("offer", "held"),
        {key("signaling_messages_total", type="offer", outcome="held", reason=""): 1},
    ),
    (
        "message rejected",
        lambda m: m.message("answer", "rejected", "unknown-peer"),
        {key("signaling_messages_total", type="answer", outcome="rejected", reason="unknown-peer"): 1},
    ),
    ("frame_received", lambda m: m.frame_received("offer"), {key("signaling_frames_received_total", type="offer"): 1}),
    (
        "frame_received invalid",
        lambda m: m.frame_received("invalid"),
        {key("signaling_frames_received_total", type="invalid"): 1},
    ),
    (
        "frame_error",
        lambda m: m.frame_error("invalid-json"),
        {key("signaling_frame_errors_total", code="invalid-json"): 1},
    ),
    ("closed", lambda m: m.closed(4409), {key("signaling_closes_total", code="4409"): 1}),
    ("closed by tornado", lambda m: m.closed(1009), {key("signaling_closes_total", code="1009"): 1}),
    (
        "frame_received unparsed",
        lambda m: m.frame_received("unparsed"),
        {key("signaling_frames_received_total", type="unparsed"): 1},
    ),
    ("frame_relayed", lambda m: m.frame_relayed("held"), {key("signaling_relayed_frames_total", outcome="held"): 1}),
    (
        "inbound_dropped",
        lambda m: m.inbound_dropped("join-refused"),
        {key("signaling_inbound_dropped_total", reason="join-refused"): 1},
    ),
    (
        "untrusted_proxy_header",
        lambda m: m.untrusted_proxy_header(),
        {key("signaling_untrusted_proxy_headers_total"): 1},
    ),
    (
        "outbound_dropped",
        lambda m: m.outbound_dropped("connection-closed"),
        {key("signaling_outbound_dropped_total", reason="connection-closed"): 1},
    ),
    (
        "slow_reader_disconnected",
        lambda m: m.slow_reader_disconnected(),
        {key("signaling_slow_reader_disconnects_total"): 1},
    ),
    ("held_expired", lambda m: m.held_expired(5), {key("signaling_held_expired_total"): 5}),
    ("held_expired of nothing", lambda m: m.held_expired(0), {}),
    (
        "relay_latency",
        lambda m: m.relay_latency(0.0003),
        {
            key("signaling_relay_latency_seconds_count"): 1,
            key("signaling_relay_latency_seconds_sum"): 0.0003,
            **{
                key("signaling_relay_latency_seconds_bucket", le=le): 1
                for le in ("0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "1.0", "+Inf")
            },
        },
    ),
    (
        "call_setup",
        lambda m: m.call_setup(0.2),
        {
            key("signaling_call_setup_seconds_count"): 1,
            key("signaling_call_setup_seconds_sum"): 0.2,
            **{
                key("signaling_call_setup_seconds_bucket", le=le): 1
                for le in ("0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "30.0", "+Inf")
            },
        },
    ),
    (
        "room_peak_members",
        lambda m: m.room_peak_members(5),
        {
            key("signaling_room_peak_members_count"): 1,
            key("signaling_room_peak_members_sum"): 5,
            **{
                key("signaling_room_peak_members_bucket", le=le): 1
                for le in ("6.0", "8.0", "12.0", "16.0", "32.0", "64.0", "+Inf")
            },
        },
    ),
]


@pytest.mark.parametrize("call, expected", [(c, e) for _, c, e in INTENTS], ids=[name for name, _, _ in INTENTS])
def test_each_intent_method_moves_exactly_its_own_series(
    metrics: SignalingMetrics, call: Callable[[SignalingMetrics], None], expected: dict[Any, float]
) -> None:
    before = samples(metrics.registry)
    call(metrics)
    changed = moved(before, samples(metrics.registry))
    assert changed.keys() == expected.keys()
    for k, delta in expected.items():
        assert changed[k] == pytest.approx(delta)


def test_mailbox_depths_are_read_from_the_watched_functions_at_scrape_time(metrics: SignalingMetrics) -> None:
    depth, hub = [0], [0]
    metrics.watch_mailboxes(lambda: depth[0], lambda: hub[0])
    assert metrics.registry.get_sample_value("signaling_room_mailbox_max_depth") == 0
    depth[0], hub[0] = 42, 7
    assert metrics.registry.get_sample_value("signaling_room_mailbox_max_depth") == 42
    assert metrics.registry.get_sample_value("signaling_hub_mailbox_depth") == 7


def test_build_info_carries_the_version(metrics: SignalingMetrics) -> None:
    assert metrics.registry.get_sample_value("signaling_build_info", {"version": "1.2.3"}) == 1


def test_every_known_label_value_has_a_series_at_zero_before_anything_happens(metrics: SignalingMetrics) -> None:
    get = metrics.registry.get_sample_value
    for path in signaling.JOIN_PATHS:
        for outcome in signaling.JOIN_OUTCOMES:
            assert get("signaling_joins_total", {"path": path, "outcome": outcome}) == 0
    for type_ in signaling.MESSAGE_TYPES:
        assert get("signaling_frames_received_total", {"type": type_}) == 0
        for outcome in ("delivered", "held"):
            assert get("signaling_messages_total", {"type": type_, "outcome": outcome, "reason": ""}) == 0
        for reason in signaling.REJECT_REASONS:
            assert get("signaling_messages_total", {"type": type_, "outcome": "rejected", "reason": reason}) == 0
    assert get("signaling_frames_received_total", {"type": "invalid"}) == 0
    assert get("signaling_frames_received_total", {"type": "unparsed"}) == 0
    for outcome in signaling.RELAY_OUTCOMES:
        assert get("signaling_relayed_frames_total", {"outcome": outcome}) == 0
    for reason in signaling.INBOUND_DROP_REASONS:
        assert get("signaling_inbound_dropped_total", {"reason": reason}) == 0
    for close_code in signaling.TORNADO_CLOSE_CODES:
        assert get("signaling_closes_total", {"code": str(close_code)}) == 0
    for code in signaling.FRAME_ERROR_CODES:
        assert get("signaling_frame_errors_total", {"code": code}) == 0
    for close_code in signaling.CLOSE_CODES:
        assert get("signaling_closes_total", {"code": str(close_code)}) == 0
    for reason in signaling.OUTBOUND_DROP_REASONS:
        assert get("signaling_outbound_dropped_total", {"reason": reason}) == 0
    for name in (
        "signaling_connected_clients",
        "signaling_rooms",
        "signaling_room_failures_total",
        "signaling_slow_reader_disconnects_total",
        "signaling_held_expired_total",
        "signaling_relay_latency_seconds_count",
        "signaling_call_setup_seconds_count",
        "signaling_room_peak_members_count",
        "signaling_room_mailbox_max_depth",
    ):
        assert get(name) == 0, name


def _subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *_subclasses(sub))]


def test_the_pre_initialised_label_values_match_the_codes_the_service_uses() -> None:
    refusals = _subclasses(errors.JoinRefused)
    assert {c.code for c in refusals} | {"ok"} == set(signaling.JOIN_OUTCOMES)
    server_closes = {wire_codes.close_code(c) for c in refusals} | {
        wire_codes.CLOSE_GOING_AWAY,
        wire_codes.CLOSE_POLICY,
        wire_codes.CLOSE_TRY_AGAIN,
        wire_codes.CLOSE_REPLACED,
        wire_codes.CLOSE_ROOM_FAILED,
    }
    assert server_closes == set(signaling.CLOSE_CODES)
    # Errors the room decides (they count as rejected messages) and the ones the
    # transport answers itself (frame errors) together make up every FrameError.
    room_side = {errors.UnknownPeer.code, errors.PeerQueueFull.code}
    assert room_side <= set(signaling.REJECT_REASONS)
    assert {c.code for c in _subclasses(errors.FrameError)} == room_side | set(signaling.FRAME_ERROR_CODES)
    assert errors.RoomUnavailable.code in signaling.REJECT_REASONS


def test_names_follow_the_prometheus_conventions_and_no_label_names_a_room_or_client(
    metrics: SignalingMetrics,
) -> None:
    families = list(metrics.registry.collect())
    assert families
    for family in families:
        assert family.name.startswith("signaling_"), family.name
        assert family.documentation.strip(), f"{family.name} has no help text"
        names = {s.name for s in family.samples}
        labels = {label for s in family.samples for label in s.labels}
        assert not labels & {"room", "roomId", "room_id", "client", "clientId", "client_id"}, family.name
        if family.type == "counter":
            assert names == {family.name + "_total"}, names
        else:
            assert not any(n.endswith("_total") for n in names), f"{family.name} is a {family.type} named _total"
        if family.type == "histogram" and ("latency" in family.name or "setup" in family.name):
            assert family.name.endswith("_seconds"), family.name


def test_no_created_series_in_either_exposition_format_even_with_the_global_switch_on(
    metrics: SignalingMetrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() turns _created off process-wide; the metrics must not rely on that.
    monkeypatch.setattr(prometheus_client.metrics, "_use_created", True)
    metrics.join("ws", "ok")
    metrics.relay_latency(0.001)
    for text in (generate_latest(metrics.registry), generate_openmetrics(metrics.registry)):
        assert b"signaling_joins_total" in text
        assert b"_created" not in text


def test_a_second_signaling_metrics_on_the_same_registry_is_refused(metrics: SignalingMetrics) -> None:
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        SignalingMetrics(metrics.registry)


def test_every_instance_starts_from_zero_in_its_own_registry() -> None:
    a, b = SignalingMetrics(CollectorRegistry()), SignalingMetrics(CollectorRegistry())
    a.client_connected()
    assert a.registry.get_sample_value("signaling_connected_clients") == 1
    assert b.registry.get_sample_value("signaling_connected_clients") == 0
