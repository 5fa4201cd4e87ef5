"""The routing core, driven directly: no actors, threads or sockets."""

from __future__ import annotations

import orjson
import pytest

from actors.errors import ClientIdTaken, RoomFull, Unauthorized
from actors.ids import ClientId, RoomId
from actors.messages import Relay
from actors.room_state import RoomLimits, RoomState
from tests.recording import RecordingSink
from tests.support import sample_data


def new_room(**limits: float) -> RoomState:
    return RoomState(RoomId("r"), RoomLimits(**limits))  # type: ignore[arg-type]


def relay(sender: str, sink: RecordingSink, type_: str = "offer", to: str | None = None, n: int = 0) -> Relay:
    return Relay(ClientId(sender), sink, type_, ClientId(to) if to else None, orjson.dumps(sample_data(type_, n)))


def deliver(deliveries: list) -> None:
    for d in deliveries:
        d.sink.send(d.frame)


def test_first_member_is_told_it_joined_an_empty_room() -> None:
    room, a = new_room(), RecordingSink("a")
    peers, out, _ = room.connect(ClientId("a"), a)
    deliver(out)
    assert peers == []
    assert a.decoded() == [{"type": "joined", "data": {"roomId": "r", "clientId": "a", "peers": []}}]


def test_joiner_gets_the_peer_list_and_the_others_get_peer_joined() -> None:
    room, a, b = new_room(), RecordingSink("a"), RecordingSink("b")
    deliver(room.connect(ClientId("a"), a)[1])
    peers, out, _ = room.connect(ClientId("b"), b)
    deliver(out)
    assert peers == ["a"]
    assert b.decoded()[-1]["data"]["peers"] == ["a"]
    assert a.decoded()[-1] == {"type": "peer-joined", "data": {"clientId": "b"}}


def test_a_connected_client_id_cannot_be_taken_by_a_second_connection() -> None:
    room = new_room()
    room.connect(ClientId("a"), RecordingSink())
    with pytest.raises(ClientIdTaken):
        room.connect(ClientId("a"), RecordingSink())


def test_addressed_frame_reaches_only_its_target_stamped_with_the_sender() -> None:
    room, a, b, c = new_room(), RecordingSink("a"), RecordingSink("b"), RecordingSink("c")
    for name, sink in (("a", a), ("b", b), ("c", c)):
        room.connect(ClientId(name), sink)
    result = room.relay(relay("a", a, "offer", to="b"))
    deliver(result.deliveries)
    assert result.outcome == "delivered"
    assert b.decoded() == [{"type": "offer", "from": "a", "data": sample_data("offer")}]
    assert a.frames == [] and c.frames == []


def test_frame_without_to_goes_to_every_other_connected_member() -> None:
    room = new_room()
    sinks = {name: RecordingSink(name) for name in "abc"}
    for name, sink in sinks.items():
        room.connect(ClientId(name), sink)
    room.reserve(ClientId("stub"), now=0)
    result = room.relay(relay("a", sinks["a"], "ice-candidate"))
    assert sorted(d.sink.name for d in result.deliveries) == ["b", "c"]


def test_broadcast_in_an_otherwise_empty_room_is_counted_as_rejected_with_a_reason() -> None:
    room, a = new_room(), RecordingSink()
    room.connect(ClientId("a"), a)
    result = room.relay(relay("a", a))
    assert (result.outcome, result.reason, result.deliveries) == ("rejected", "no-recipients", [])


@pytest.mark.parametrize("to", ["nobody", "a"], ids=["absent", "self"])
def test_frame_to_an_unknown_peer_or_to_yourself_is_answered_with_unknown_peer(to: str) -> None:
    room, a = new_room(), RecordingSink()
    room.connect(ClientId("a"), a)
    result = room.relay(relay("a", a, to=to))
    deliver(result.deliveries)
    assert (result.outcome, result.reason) == ("rejected", "unknown-peer")
    assert a.decoded()[0]["type"] == "error" and a.decoded()[0]["data"]["code"] == "unknown-peer"


def test_frames_from_a_replaced_or_departed_connection_are_rejected_as_stale() -> None:
    room, a, old = new_room(), RecordingSink(), RecordingSink()
    room.connect(ClientId("a"), a)
    result = room.relay(relay("a", old, to="a"))
    assert (result.outcome, result.reason, result.deliveries) == ("rejected", "stale-sender", [])


def test_frames_for_a_rest_stub_are_held_and_delivered_in_order_after_joined() -> None:
    room, a, b = new_room(), RecordingSink("a"), RecordingSink("b")
    room.connect(ClientId("a"), a)
    room.reserve(ClientId("b"), now=0)
    for n in range(3):
        assert room.relay(relay("a", a, "ice-candidate", to="b", n=n)).outcome == "held"
    deliver(room.connect(ClientId("b"), b)[1])
    frames = b.decoded()
    assert [f["type"] for f in frames] == ["joined", "ice-candidate", "ice-candidate", "ice-candidate"]
    assert [f["data"] for f in frames[1:]] == [sample_data("ice-candidate", n) for n in range(3)]


def test_held_frames_are_bounded_and_the_sender_is_told_when_the_queue_is_full() -> None:
    room, a = new_room(max_held=2), RecordingSink()
    room.connect(ClientId("a"), a)
    room.reserve(ClientId("b"), now=0)
    outcomes = [room.relay(relay("a", a, to="b", n=n)) for n in range(3)]
    assert [r.outcome for r in outcomes] == ["held", "held", "rejected"]
    assert outcomes[2].reason == "peer-queue-full"


def test_a_stub_expires_after_its_ttl_with_its_held_frames_counted() -> None:
    room, a = new_room(stub_ttl=30), RecordingSink()
    room.connect(ClientId("a"), a)
    room.reserve(ClientId("b"), now=100)
    room.relay(relay("a", a, to="b"))
    assert room.expire(now=129.9) == ([], 0, [])
    assert room.next_expiry() == 130
    assert room.expire(now=130) == (["b"], 1, [])  # never seen by the others: no peer-left
    assert "b" not in room.members and room.next_expiry() is None


def test_a_reserved_client_id_is_taken_for_rest_joins_too() -> None:
    room = new_room()
    room.reserve(ClientId("a"), now=0)
    with pytest.raises(ClientIdTaken):
        room.reserve(ClientId("a"), now=0)


def test_room_full_counts_connected_members_and_stubs() -> None:
    room = new_room(max_members=2)
    room.connect(ClientId("a"), RecordingSink())
    room.reserve(ClientId("b"), now=0)
    with pytest.raises(RoomFull):
        room.connect(ClientId("c"), RecordingSink())
    with pytest.raises(RoomFull):
        room.reserve(ClientId("c"), now=0)
    room.connect(ClientId("b"), RecordingSink())  # claiming its own stub needs no new seat


def test_leaving_tells_the_others_and_empties_the_room() -> None:
    room, a, b = new_room(), RecordingSink("a"), RecordingSink("b")
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), b)
    out = room.disconnect(ClientId("a"), a, now=0, abnormal=False)
    assert out is not None
    deliver(out)
    assert b.decoded()[-1] == {"type": "peer-left", "data": {"clientId": "a"}}
    room.disconnect(ClientId("b"), b, now=0, abnormal=False)
    assert room.is_empty


def test_the_close_of_an_old_connection_does_not_remove_its_replacement() -> None:
    room, old, new = new_room(), RecordingSink(), RecordingSink()
    room.connect(ClientId("a"), new)
    assert room.disconnect(ClientId("a"), old, now=0, abnormal=False) is None
    assert room.members["a"].sink is new


def test_close_all_returns_every_connected_sink_and_forgets_everyone() -> None:
    room, a, b = new_room(), RecordingSink(), RecordingSink()
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), b)
    room.reserve(ClientId("c"), now=0)
    assert set(map(id, room.close_all())) == {id(a), id(b)}
    assert room.is_empty


def test_a_second_connection_with_a_token_as_new_takes_over_without_presence_churn() -> None:
    room, a, old, new = new_room(), RecordingSink("a"), RecordingSink("old"), RecordingSink("new")
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), old, proof=1000)
    a.frames.clear()
    peers, out, replaced = room.connect(ClientId("b"), new, proof=1000)
    deliver(out)
    assert replaced is old and peers == ["a"]
    assert new.types() == ["joined"] and a.frames == []
    result = room.relay(relay("a", a, to="b"))
    assert result.deliveries[0].sink is new


@pytest.mark.parametrize(
    ("seat_proof", "proof"),
    [(None, None), (None, 1000), (1000, None), (1000, 999)],
    ids=["no-tokens", "seat-without-token", "no-token", "older-token"],
)
def test_a_connected_seat_is_not_taken_over_without_a_token_as_new_as_its_own(
    seat_proof: int | None, proof: int | None
) -> None:
    room, first = new_room(), RecordingSink()
    room.connect(ClientId("b"), first, proof=seat_proof)
    with pytest.raises(ClientIdTaken):
        room.connect(ClientId("b"), RecordingSink(), proof=proof)
    assert room.members["b"].sink is first


@pytest.mark.parametrize("proof", [None, 999])
def test_a_seat_reserved_with_a_token_is_claimed_only_with_that_token_or_a_newer_one(proof: int | None) -> None:
    room = new_room()
    room.reserve(ClientId("b"), now=0, proof=1000)
    with pytest.raises(Unauthorized):
        room.connect(ClientId("b"), RecordingSink(), proof=proof)
    room.connect(ClientId("b"), RecordingSink(), proof=1000)


def test_a_dropped_seat_that_had_shown_a_token_needs_it_to_resume() -> None:
    room, b = new_room(reconnect_grace=10), RecordingSink()
    room.connect(ClientId("b"), b, proof=1000)
    room.disconnect(ClientId("b"), b, now=0, abnormal=True)
    with pytest.raises(Unauthorized):
        room.connect(ClientId("b"), RecordingSink())
    room.connect(ClientId("b"), RecordingSink(), proof=1200)
    assert room.members["b"].proof == 1200


def test_held_frames_are_capped_in_bytes_too() -> None:
    room, a = new_room(max_held_bytes=3000), RecordingSink()
    room.connect(ClientId("a"), a)
    room.reserve(ClientId("b"), now=0)
    big = Relay(ClientId("a"), a, "offer", ClientId("b"), orjson.dumps({"type": "offer", "sdp": "x" * 1400}))
    assert [room.relay(big).outcome for _ in range(3)] == ["held", "held", "rejected"]
    assert room.members["b"].held_bytes <= 3000


def test_a_broadcast_is_held_for_a_member_within_its_grace_but_not_for_a_stub() -> None:
    room, a, b, c = new_room(reconnect_grace=10), RecordingSink("a"), RecordingSink("b"), RecordingSink("c")
    for name, sink in (("a", a), ("b", b), ("c", c)):
        room.connect(ClientId(name), sink)
    room.reserve(ClientId("stub"), now=0)
    room.disconnect(ClientId("c"), c, now=0, abnormal=True)
    result = room.relay(relay("a", a, "ice-candidate"))
    assert (result.outcome, len(result.deliveries), result.held) == ("delivered", 1, 1)
    assert len(room.members["c"].held) == 1 and not room.members["stub"].held


def test_an_abnormal_drop_keeps_the_seat_and_holds_frames_until_the_client_returns() -> None:
    room, a, b1, b2 = new_room(reconnect_grace=10), RecordingSink("a"), RecordingSink("b1"), RecordingSink("b2")
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), b1)
    a.frames.clear()
    assert room.disconnect(ClientId("b"), b1, now=100, abnormal=True) == []  # no peer-left yet
    assert room.relay(relay("a", a, "ice-candidate", to="b", n=7)).outcome == "held"
    assert room.expire(now=109) == ([], 0, [])
    peers, out, replaced = room.connect(ClientId("b"), b2)
    deliver(out)
    assert replaced is None and peers == ["a"]
    assert b2.types() == ["joined", "ice-candidate"] and b2.decoded()[1]["data"] == sample_data("ice-candidate", 7)
    assert a.frames == []  # no peer-left, no peer-joined


def test_a_dropped_member_that_does_not_return_is_announced_as_left_when_its_grace_ends() -> None:
    room, a, b = new_room(reconnect_grace=10), RecordingSink("a"), RecordingSink("b")
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), b)
    room.disconnect(ClientId("b"), b, now=100, abnormal=True)
    expired, dropped, out = room.expire(now=110)
    deliver(out)
    assert (expired, dropped) == (["b"], 0)
    assert a.decoded()[-1] == {"type": "peer-left", "data": {"clientId": "b"}}


def test_a_clean_close_leaves_at_once_even_with_a_grace_period_configured() -> None:
    room, a, b = new_room(reconnect_grace=10), RecordingSink("a"), RecordingSink("b")
    room.connect(ClientId("a"), a)
    room.connect(ClientId("b"), b)
    out = room.disconnect(ClientId("b"), b, now=0, abnormal=False)
    assert out and "b" not in room.members
