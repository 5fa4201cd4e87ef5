"""The cross-backend relay (transport/cluster_relay.py) with a fake link: no Redis, no sockets.

The fake link records what a backend publishes; the test plays the other backend by
calling ``handle`` with its envelopes (the real link is Redis pub/sub: tests/cluster/).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pykka
import pytest
from prometheus_client import CollectorRegistry

from actors.errors import CLOSE_ROOM_MOVED, RoomMoved
from actors.ids import ClientId, RoomId
from actors.messages import Disconnect, Relay
from actors.ownership import CLOSE, FRAME, Remote, envelope, open_envelope
from actors.remote_sink import RemoteSink
from metrics.signaling import ClusterMetrics, SignalingMetrics
from tests.recording import RecordingSink
from transport.cluster_relay import OwnedAttachment, Relays, SocketClosed


class FakeLink:
    def __init__(self) -> None:
        self.up = True
        self.sent: list[tuple[str, bytes]] = []
        self.epochs: dict[str, int] = {}

    def publish(self, to_channel: str, message: bytes) -> None:
        self.sent.append((to_channel, message))

    def open_epoch(self, room_id: RoomId) -> int | None:
        return self.epochs.get(room_id)


def relays(name: str) -> tuple[Relays, FakeLink, CollectorRegistry]:
    registry = CollectorRegistry()
    link = FakeLink()
    return Relays(name, link, SignalingMetrics(registry), ClusterMetrics(registry)), link, registry


def dropped(registry: CollectorRegistry, reason: str) -> float:
    return registry.get_sample_value("signaling_cluster_frames_dropped_total", {"reason": reason}) or 0.0


async def attach(edge: Relays, link: FakeLink, sink: RecordingSink, epoch: int = 7) -> Any:
    """An edge attachment to owner "o" whose owner answered ``joined``."""
    joining = asyncio.ensure_future(edge.join_remote(Remote("o", epoch), RoomId("r"), ClientId("c"), sink, None))
    await asyncio.sleep(0)  # let it publish its connect
    ((_, connect),) = link.sent
    header, _ = open_envelope(connect)
    assert header["k"] == "C" and header["e"] == epoch
    link.sent.clear()
    edge.handle({"k": "j", "a": header["a"]}, b"")
    return (await joining).room, header["a"]


async def test_an_edge_fences_frames_stamped_with_another_epoch_and_closes_the_client() -> None:
    edge, link, registry = relays("e")
    sink = RecordingSink("c")
    room, att = await attach(edge, link, sink, epoch=7)
    edge.handle({"k": FRAME, "a": att, "e": 7}, b'{"type":"offer"}')
    edge.handle({"k": FRAME, "a": att, "e": 6}, b'{"type":"answer"}')  # a former owner
    assert sink.types() == ["offer"]
    assert sink.closed is not None and sink.closed[0] == CLOSE_ROOM_MOVED
    assert dropped(registry, "stale-epoch") == 1
    ((_, leave),) = link.sent  # the owner is told the member left
    assert open_envelope(leave)[0]["k"] == "L"
    link.sent.clear()
    edge.handle({"k": FRAME, "a": att, "e": 7}, b"late")  # nothing reaches a closed attachment
    assert dropped(registry, "unknown-attachment") == 1 and sink.types() == ["offer"]
    room.tell(Relay(ClientId("c"), sink, "offer", None, b"{}"))
    assert link.sent == []  # and its later frames go nowhere


async def test_frames_both_ways_keep_their_order_and_a_leave_reaches_the_owner() -> None:
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    room, _ = await attach(edge, link, sink)
    for i in range(5):
        room.tell(Relay(ClientId("c"), sink, "ice-candidate", ClientId("d"), b'{"n":%d}' % i))
    room.tell(Disconnect(RoomId("r"), ClientId("c"), sink))
    headers = [open_envelope(m) for _, m in link.sent]
    assert [h["k"] for h, _ in headers] == ["R"] * 5 + ["L"]
    assert [p for _, p in headers[:5]] == [b'{"n":%d}' % i for i in range(5)]
    assert all(ch == "signaling:backend:o" for ch, _ in link.sent)


async def test_a_lost_link_fails_waiting_joins_and_closes_every_remote_socket() -> None:
    edge, link, _ = relays("e")
    connected = RecordingSink("c")
    await attach(edge, link, connected)
    joining = RecordingSink("w")
    waiting = asyncio.ensure_future(edge.join_remote(Remote("o", 7), RoomId("r2"), ClientId("w"), joining, None))
    await asyncio.sleep(0)
    link.up = False
    edge.link_lost()
    with pytest.raises(RoomMoved):
        await waiting
    assert connected.closed is not None and connected.closed[0] == CLOSE_ROOM_MOVED
    assert joining.closed is None  # its join failed instead: retried, or refused with a close
    assert edge.edge == {} and edge.pending == {}


async def test_a_join_waiting_for_an_owner_that_vanishes_fails_without_closing_its_socket() -> None:
    # Else the join is retried (the room moved) with a socket already closed, and that
    # retry replaces the client's next connection in the room.
    edge, link, _ = relays("e")
    joining = RecordingSink("w")
    waiting = asyncio.ensure_future(edge.join_remote(Remote("o", 7), RoomId("r"), ClientId("w"), joining, None))
    await asyncio.sleep(0)
    edge.peer_gone("o")
    with pytest.raises(RoomMoved) as failed:
        await waiting
    assert not isinstance(failed.value, SocketClosed)  # retryable by Cluster.join
    assert joining.closed is None
    assert edge.edge == {} and edge.pending == {}


async def test_an_owner_refuses_a_remote_join_under_an_epoch_it_does_not_hold() -> None:
    owner, link, _ = relays("o")
    link.epochs["r"] = 8
    owner.handle({"k": "C", "b": "e", "a": "1", "r": "r", "c": "c", "e": 7, "p": None}, b"")
    ((channel, answer),) = link.sent
    assert channel == "signaling:backend:e"
    assert open_envelope(answer)[0] == {"k": "x", "a": "1", "code": "room-moved"}
    assert owner.owned == {}


async def test_a_close_from_the_owner_closes_the_socket_with_its_code() -> None:
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    _, att = await attach(edge, link, sink)
    edge.handle(open_envelope(envelope({"k": CLOSE, "a": att, "e": 7, "code": 4403, "reason": "bye"}))[0], b"")
    assert sink.closed == (4403, "bye")
    assert [open_envelope(m)[0]["k"] for _, m in link.sent] == ["L"]


async def test_an_owner_shutting_down_closes_a_remote_socket_with_room_moved_not_going_away() -> None:
    # The owner goes away (1001 to its own sockets); this backend does not: the room moves.
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    _, att = await attach(edge, link, sink)
    edge.handle({"k": CLOSE, "a": att, "e": 7, "code": 1001, "reason": "server shutting down"}, b"")
    assert sink.closed is not None and sink.closed[0] == CLOSE_ROOM_MOVED


def owned_member(owner: Relays, edge: str = "e", att: str = "1") -> None:
    """A remote member of one of ``owner``'s rooms (its Room answered the Connect)."""
    sink = RemoteSink(owner.link.publish, "signaling:backend:" + edge, att, 7, "c", owner.backend_id)
    owner.owned[(edge, att)] = OwnedAttachment(RoomId("r"), ClientId("c"), sink)


async def test_an_owner_answers_frames_for_an_attachment_it_does_not_know_with_one_retryable_close() -> None:
    owner, link, registry = relays("o")
    for _ in range(3):  # a burst from a socket the owner dropped (say, while its link was down)
        owner.handle({"k": "R", "b": "e", "a": "9", "t": "offer", "to": "d"}, b"{}")
    ((channel, close),) = link.sent
    assert channel == "signaling:backend:e"
    header = open_envelope(close)[0]
    assert header["k"] == CLOSE and header["a"] == "9" and header["code"] == CLOSE_ROOM_MOVED and "e" not in header
    assert dropped(registry, "unknown-attachment") == 3
    # ... and the edge closes the socket with it (no epoch to fence on: not a stale frame).
    edge, edge_link, edge_registry = relays("e")
    sink = RecordingSink("c")
    _, att = await attach(edge, edge_link, sink)
    edge.handle({**header, "a": att}, b"")
    assert sink.closed is not None and sink.closed[0] == CLOSE_ROOM_MOVED
    assert dropped(edge_registry, "stale-epoch") == 0


async def test_an_edge_answers_frames_for_an_attachment_it_does_not_know_with_one_leave() -> None:
    edge, link, _ = relays("e")
    frame = open_envelope(envelope({"k": FRAME, "a": "9", "e": 7, "o": "o"}))[0]
    for _ in range(3):
        edge.handle(frame, b'{"type":"offer"}')
    ((channel, leave),) = link.sent
    assert channel == "signaling:backend:o"
    assert open_envelope(leave)[0] == {"k": "L", "b": "e", "a": "9", "ab": True}


async def test_an_edge_whose_link_was_lost_tells_the_owner_its_sockets_left_once_the_link_is_back() -> None:
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    _, att = await attach(edge, link, sink)
    link.up = False
    edge.link_lost()
    assert link.sent == []  # nothing can be sent now
    link.up = True
    edge.link_restored()
    ((channel, leave),) = link.sent
    assert channel == "signaling:backend:o"
    # Abnormal: the owner's Room holds the seat for the reconnect grace, then says peer-left.
    assert open_envelope(leave)[0] == {"k": "L", "b": "e", "a": att, "ab": True}
    link.sent.clear()
    edge.link_restored()
    assert link.sent == []


async def test_an_owner_whose_link_was_lost_tells_the_edges_to_close_once_the_link_is_back() -> None:
    owner, link, _ = relays("o")
    owned_member(owner)
    link.up = False
    owner.link_lost()
    assert owner.owned == {}
    link.up = True
    owner.link_restored()
    ((channel, close),) = link.sent
    assert channel == "signaling:backend:e"
    header = open_envelope(close)[0]
    assert (header["k"], header["a"], header["code"]) == (CLOSE, "1", CLOSE_ROOM_MOVED)


async def test_dropping_a_remote_member_twice_is_harmless() -> None:
    owner, _, _ = relays("o")
    owned_member(owner)
    owner.drop_owned(("e", "1"))
    owner.drop_owned(("e", "1"))  # a timed-out join whose member left meanwhile
    assert owner.owned == {}


async def test_a_newer_epoch_learned_from_a_claim_closes_attachments_made_under_an_older_one() -> None:
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    await attach(edge, link, sink, epoch=7)
    edge.owner_seen(RoomId("r"), "o", 7)
    assert sink.closed is None
    edge.owner_seen(RoomId("r"), "p", 8)
    assert sink.closed is not None and sink.closed[0] == CLOSE_ROOM_MOVED


async def test_a_backend_gone_from_its_channel_takes_its_attachments_with_it() -> None:
    edge, link, _ = relays("e")
    sink = RecordingSink("c")
    await attach(edge, link, sink)
    edge.peer_gone("other")
    assert sink.closed is None
    edge.peer_gone("o")  # the owner: nobody listens on its channel any more
    assert sink.closed is not None and sink.closed[0] == CLOSE_ROOM_MOVED
    assert edge.edge == {}


class DeadHub:
    """A Hub that has stopped (this backend is shutting down)."""

    def tell(self, message: object) -> None:
        raise pykka.ActorDeadError("hub stopped")


async def test_a_remote_join_reaching_a_stopped_hub_is_refused_not_raised_into_the_reader() -> None:
    owner, link, _ = relays("o")
    owner.hub = DeadHub()  # type: ignore[assignment]
    link.epochs["r"] = 7
    owner.handle({"k": "C", "b": "e", "a": "1", "r": "r", "c": "c", "e": 7, "p": None}, b"")
    owner.handle({"k": "S", "b": "e", "a": "s2", "r": "r", "c": "d", "e": 7, "p": None}, b"")
    answers = [open_envelope(m)[0] for _, m in link.sent]
    assert answers == [{"k": "x", "a": "1", "code": "shutting-down"}, {"k": "x", "a": "s2", "code": "shutting-down"}]
    assert owner.owned == {}


async def test_a_join_whose_joined_frame_arrived_before_the_answer_is_closed_not_retried() -> None:
    # The owner publishes the `joined` frame, then its answer; if it vanishes in between,
    # the client has already seen `joined`: its socket must be closed (4502), and the
    # join not retried behind its back.
    edge, link, _ = relays("e")
    joining = RecordingSink("w")
    waiting = asyncio.ensure_future(edge.join_remote(Remote("o", 7), RoomId("r"), ClientId("w"), joining, None))
    await asyncio.sleep(0)
    att = open_envelope(link.sent[0][1])[0]["a"]
    edge.handle({"k": FRAME, "a": att, "e": 7}, b'{"type":"joined"}')
    edge.peer_gone("o")
    with pytest.raises(SocketClosed):
        await waiting
    assert joining.types() == ["joined"]
    assert joining.closed is not None and joining.closed[0] == CLOSE_ROOM_MOVED
