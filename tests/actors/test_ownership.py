"""Tier 1: cluster-mode lease, route and fencing decisions, without Redis or sockets."""

from __future__ import annotations

import pytest

from actors.ids import RoomId
from actors.ownership import (
    CLOSE,
    FRAME,
    VALID_SHARE,
    LeaseState,
    LeaseTable,
    Local,
    Remote,
    accept_from_owner,
    envelope,
    lease_value,
    open_envelope,
    parse_lease_value,
    route_after_claim,
    superseded,
)
from actors.remote_sink import RemoteSink

R = RoomId("r")
TTL = 10.0


def test_a_claimed_lease_is_valid_for_a_share_of_the_ttl_from_when_the_claim_was_sent() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, sent_at=100.0)
    assert table.may_deliver(R, 100.0 + VALID_SHARE * TTL - 0.01)
    assert not table.may_deliver(R, 100.0 + VALID_SHARE * TTL)
    assert table.renew_interval < VALID_SHARE * TTL / 2  # two renewals may be lost


def test_a_renewal_extends_from_when_it_was_sent_and_never_shortens() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    table.renewed(R, 7, 103.0)
    assert table.may_deliver(R, 103.0 + VALID_SHARE * TTL - 0.01)
    table.renewed(R, 7, 101.0)  # a slow reply to an older renewal
    assert table.may_deliver(R, 103.0 + VALID_SHARE * TTL - 0.01)
    table.renewed(R, 6, 200.0)  # another epoch's renewal is not this lease's
    assert not table.may_deliver(R, 150.0)


def test_a_paused_owner_wakes_up_unable_to_deliver_and_its_leases_are_lost() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    woke = 100.0 + 3 * TTL  # SIGSTOP: no renewal ran meanwhile
    assert not table.may_deliver(R, woke)
    assert table.overdue(woke) == [R]
    assert table.get(R).state is LeaseState.LOST  # type: ignore[union-attr]
    table.renewed(R, 7, woke)  # even a late success does not revive it: Redis may have moved it
    assert not table.may_deliver(R, woke)


def test_redis_unreachable_suspends_the_lease_only_until_its_certain_validity_ends() -> None:
    # Cut off from Redis, a backend cannot know whether another one claimed the room after
    # the lease expired in Redis: it must stop delivering before that can happen.
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    table.claimed(RoomId("late"), 8, 80.0)  # already past its validity at 100
    table.unreachable(100.0)
    assert table.get(R).state is LeaseState.SUSPENDED  # type: ignore[union-attr]
    deadline = 100.0 + VALID_SHARE * TTL
    assert deadline < 100.0 + TTL  # a safety margin below the TTL Redis counts
    assert table.may_deliver(R, deadline - 0.01)  # the room keeps working meanwhile
    assert not table.may_deliver(R, deadline)
    assert not table.may_deliver(RoomId("late"), 100.0)
    assert table.overdue(deadline - 0.01) == [RoomId("late")]
    assert table.overdue(deadline) == [R]  # then lost: the room closes its members with 4502
    assert table.get(R).state is LeaseState.LOST  # type: ignore[union-attr]


def test_a_suspended_lease_reasserted_in_time_is_held_again() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    table.unreachable(100.0)
    table.renewed(R, 7, 102.0)  # re-asserted when Redis is back, before the deadline
    assert table.get(R).state is LeaseState.HELD  # type: ignore[union-attr]
    assert table.may_deliver(R, 102.0 + VALID_SHARE * TTL - 0.01)


def test_lost_is_news_once_and_only_for_the_same_epoch() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    assert not table.lost(R, epoch=6)
    assert table.lost(R, epoch=7)
    assert not table.lost(R)
    assert not table.may_deliver(R, 100.0)
    assert table.to_renew() == []


def test_release_compares_the_epoch_and_a_lost_lease_needs_no_release() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    assert table.start_release(R) == 7
    assert table.start_release(R) is None  # already in flight
    assert not table.may_deliver(R, 100.0)  # a reaped room's lease admits nobody
    table.released(R, 7)
    assert table.get(R) is None
    table.claimed(R, 9, 100.0)
    table.lost(R)
    assert table.start_release(R) is None and table.get(R) is None


def test_drain_stops_every_room_at_once_and_returns_what_to_release() -> None:
    table = LeaseTable(TTL)
    table.claimed(R, 7, 100.0)
    table.claimed(RoomId("s"), 8, 100.0)
    table.lost(RoomId("s"))
    assert table.drain() == [(R, 7)]
    assert not table.may_deliver(R, 100.0)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ([1, 12], Local(12)),
        ([0, b"other:1 11"], Remote("other:1", 11)),
    ],
)
def test_a_claim_result_becomes_a_route(result: list[object], expected: object) -> None:
    table = LeaseTable(TTL)
    assert route_after_claim("me", table, R, result, 100.0) == expected
    assert table.highest_epoch in (11, 12)


def test_two_joins_racing_to_claim_on_one_backend_both_end_up_local() -> None:
    table = LeaseTable(TTL)
    assert route_after_claim("me", table, R, [1, 5], 100.0) == Local(5)
    assert route_after_claim("me", table, R, [0, b"me 5"], 100.0) == Local(5)


def test_an_adopted_leftover_lease_of_ours_is_local_under_its_new_epoch() -> None:
    # The claim script adopts a lease naming our own id under a fresh epoch ([1, epoch]).
    table = LeaseTable(TTL)
    table.observe_epoch(5)
    assert route_after_claim("me", table, R, [1, 6], 100.0) == Local(6)
    assert table.may_deliver(R, 100.0)


def test_our_id_under_an_epoch_we_do_not_hold_is_not_understood_rather_than_stale() -> None:
    # Cannot happen with one claim per room in flight (transport/cluster.py); if it did,
    # the join is retried (RoomMoved) rather than refused until the lease expires.
    with pytest.raises(ValueError):
        route_after_claim("me", LeaseTable(TTL), R, [0, b"me 11"], 100.0)
    table = LeaseTable(TTL)
    table.claimed(R, 5, 0.0)
    with pytest.raises(ValueError):  # ours once, but no longer certainly valid
        route_after_claim("me", table, R, [0, b"me 5"], 100.0)


@pytest.mark.parametrize(
    ("attached", "seen", "stale"),
    [
        (("o", 5), ("o", 5), False),
        (("o", 5), ("o", 6), True),
        (("o", 5), ("p", 6), True),
        (("o", 5), ("p", 5), True),
        (("o", 5), ("p", 4), False),
    ],
)
def test_an_attachment_is_superseded_by_any_newer_epoch_seen(
    attached: tuple[str, int], seen: tuple[str, int], stale: bool
) -> None:
    assert superseded(*attached, *seen) is stale


@pytest.mark.parametrize("value", [None, b"", b"no-epoch", b"x y", b" 5"])
def test_malformed_lease_values_parse_to_none(value: bytes | None) -> None:
    assert parse_lease_value(value) is None
    with pytest.raises(ValueError):
        route_after_claim("me", LeaseTable(TTL), R, [0, value], 0.0)


def test_lease_values_round_trip_with_spaces_in_nothing_but_the_separator() -> None:
    assert parse_lease_value(lease_value("host:8080:ab12", 42)) == ("host:8080:ab12", 42)


@pytest.mark.parametrize(("attached", "frame", "ok"), [(5, 5, True), (5, 4, False), (5, 6, False)])
def test_frames_from_another_epoch_are_fenced(attached: int, frame: int, ok: bool) -> None:
    assert accept_from_owner(attached, frame) is ok


def test_envelopes_round_trip_any_payload_and_reject_garbage() -> None:
    header = {"k": "R", "a": "7", "t": "offer", "to": None}
    payload = b'{"sdp":"v=0\\r\\n\n"}'
    assert open_envelope(envelope(header, payload)) == (header, payload)
    for bad in (b"no newline", b"[1]\n", b"{}\n", b"\xff\n"):
        with pytest.raises(ValueError):
            open_envelope(bad)


def test_a_remote_sink_publishes_epoch_stamped_frames_then_one_close_then_nothing() -> None:
    published: list[tuple[str, bytes]] = []
    sink = RemoteSink(lambda ch, msg: published.append((ch, msg)), "chan", "a1", 7, "c")
    sink.send(b'{"type":"joined"}')
    sink.close(4502, "moved")
    sink.close(4502, "moved")
    sink.send(b"late")
    assert [ch for ch, _ in published] == ["chan", "chan"]
    first, second = (open_envelope(msg) for _, msg in published)
    assert first == ({"k": FRAME, "a": "a1", "e": 7, "o": ""}, b'{"type":"joined"}')
    assert second[0] == {"k": CLOSE, "a": "a1", "e": 7, "code": 4502, "reason": "moved"}
