"""Tier 2: the Hub and ClusterRoom under a lease gate (a plain fake: no Redis here)."""

from __future__ import annotations

from typing import Any

import orjson
import pykka
import pytest

from actors.cluster_room import LeaseLost, bind
from actors.errors import CLOSE_ROOM_MOVED, RoomMoved
from actors.ids import ClientId, RoomId
from actors.messages import Relay
from tests.actors.test_hub import Harness
from tests.recording import RecordingSink
from tests.support import sample_data


class Gate:
    """This backend's leases, as the Hub and the rooms see them."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.started: dict[str, pykka.ActorRef[Any]] = {}
        self.closed: list[str] = []

    def may_deliver(self, room_id: RoomId) -> bool:
        return room_id in self.valid

    def may_open(self, room_id: RoomId) -> bool:
        return room_id in self.valid

    def room_started(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        self.started[room_id] = room

    def room_closed(self, room_id: RoomId, room: pykka.ActorRef[Any]) -> None:
        self.closed.append(room_id)


def harness(gate: Gate) -> Harness:
    return Harness(room_class=bind(gate), gate=gate)


async def test_no_room_is_created_without_the_lease() -> None:
    gate = Gate()
    h = harness(gate)
    with pytest.raises(RoomMoved):
        await h.connect("r", "a", RecordingSink("a"))
    assert await h.room("r") is None
    await h.close()


async def test_a_room_whose_lease_ran_out_delivers_nothing_and_closes_everyone_with_4502() -> None:
    gate = Gate()
    gate.valid.add("r")
    h = harness(gate)
    a, b = RecordingSink("a"), RecordingSink("b")
    joined = await h.connect("r", "a", a)
    await h.connect("r", "b", b)
    assert gate.started["r"] is joined.room
    gate.valid.clear()  # e.g. the process was paused past its lease
    joined.room.tell(Relay(ClientId("a"), a, "offer", ClientId("b"), orjson.dumps(sample_data("offer"))))
    assert (await a.wait_closed())[0] == CLOSE_ROOM_MOVED
    assert (await b.wait_closed())[0] == CLOSE_ROOM_MOVED
    assert "offer" not in b.types()
    assert h.sample("signaling_messages_total", type="offer", outcome="rejected", reason="room-moved") == 1
    with pytest.raises(RoomMoved):  # and it admits nobody: they rejoin where the room is now
        await h.connect("r", "c", RecordingSink("c"))
    await h.close()
    assert "r" in gate.closed  # reaped: the Hub asked for the lease to be released


async def test_lease_lost_closes_the_members_and_the_hub_reaps_the_room() -> None:
    gate = Gate()
    gate.valid.add("r")
    h = harness(gate)
    a = RecordingSink("a")
    joined = await h.connect("r", "a", a)
    gate.valid.clear()
    joined.room.tell(LeaseLost())
    assert (await a.wait_closed())[0] == CLOSE_ROOM_MOVED
    # The room told the Hub it is idle before closing a returned control to us (one loop).
    assert await h.room("r") is None and gate.closed == ["r"]
    await h.close()
