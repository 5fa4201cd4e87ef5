"""Real Hub and Room actors on a running loop, with recording sinks instead of sockets."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pykka
import pytest
from prometheus_client import CollectorRegistry

from actors import room as room_module
from actors import runtime
from actors.errors import CLOSE_ROOM_FAILED, ClientIdTaken, RoomFull, RoomUnavailable, ServerFull, ShuttingDown
from actors.hub import Hub
from actors.ids import ClientId, RoomId
from actors.messages import CloseAll, Connect, Disconnect, ExpireStubs, GetRoom, Joined, Relay, Reserve, Shutdown
from actors.room_state import RoomLimits
from actors.runtime import LoopFuture
from metrics.signaling import SignalingMetrics
from tests.recording import RecordingSink
from tests.support import sample_data, scaled


class Harness:
    def __init__(self, **hub_kwargs: Any) -> None:
        self.metrics = SignalingMetrics(CollectorRegistry())
        self.hub = Hub.start(self.metrics, **hub_kwargs)

    async def connect(self, room: str, client: str, sink: RecordingSink) -> Joined:
        reply = LoopFuture()
        self.hub.tell(Connect(RoomId(room), ClientId(client), sink, reply))
        return await reply

    async def reserve(self, room: str, client: str) -> None:
        reply = LoopFuture()
        self.hub.tell(Reserve(RoomId(room), ClientId(client), reply))
        await reply

    async def room(self, room: str) -> pykka.ActorRef[Any] | None:
        reply = LoopFuture()
        self.hub.tell(GetRoom(RoomId(room), reply))
        return await reply

    async def settle(self, room_ref: pykka.ActorRef[Any]) -> None:
        """Wait until the room has handled everything told to it so far (its mailbox is FIFO)."""
        await room_ref.ask(ExpireStubs(), block=False)

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def close(self) -> None:
        reply = LoopFuture()
        self.hub.tell(Shutdown(1001, "test over", reply))
        await reply
        await runtime.stop(self.hub)


async def test_the_first_join_creates_the_room_and_members_see_each_other() -> None:
    h = Harness()
    a, b = RecordingSink("a"), RecordingSink("b")
    joined_a = await h.connect("r1", "a", a)
    joined_b = await h.connect("r1", "b", b)
    assert joined_a.peers == () and joined_b.peers == ("a",)
    assert joined_a.room is joined_b.room is await h.room("r1")
    assert a.types() == ["joined", "peer-joined"]
    assert h.sample("signaling_rooms") == 1
    await h.close()


async def test_relay_goes_to_the_addressed_member_only_and_never_across_rooms() -> None:
    h = Harness()
    sinks = {name: RecordingSink(name) for name in ("a", "b", "c")}
    joined = await h.connect("r1", "a", sinks["a"])
    await h.connect("r1", "b", sinks["b"])
    await h.connect("r2", "c", sinks["c"])
    joined.room.tell(Relay(ClientId("a"), sinks["a"], "offer", ClientId("b"), orjson.dumps(sample_data("offer"))))
    joined.room.tell(Relay(ClientId("a"), sinks["a"], "offer", ClientId("c"), orjson.dumps(sample_data("offer"))))
    await h.settle(joined.room)
    assert sinks["b"].decoded()[-1] == {"type": "offer", "from": "a", "data": sample_data("offer")}
    assert sinks["a"].decoded()[-1]["data"]["code"] == "unknown-peer"  # c is in another room
    assert sinks["c"].types() == ["joined"]
    assert h.sample("signaling_messages_total", type="offer", outcome="delivered", reason="") == 1
    assert h.sample("signaling_messages_total", type="offer", outcome="rejected", reason="unknown-peer") == 1
    await h.close()


async def test_the_room_is_reaped_once_its_last_member_leaves() -> None:
    h = Harness()
    sink = RecordingSink()
    joined = await h.connect("r1", "a", sink)
    joined.room.tell(Disconnect(RoomId("r1"), ClientId("a"), sink))
    await h.settle(joined.room)  # the room has told the Hub it is idle
    assert await h.room("r1") is None
    assert h.sample("signaling_rooms") == 0
    await pykka_stopped(joined.room)
    await h.close()


async def test_a_refused_join_into_a_new_room_does_not_leave_the_room_behind() -> None:
    h = Harness(limits=RoomLimits(max_members=1))
    await h.connect("r1", "a", RecordingSink())
    with pytest.raises(RoomFull):
        await h.connect("r1", "b", RecordingSink())
    with pytest.raises(ClientIdTaken):
        await h.connect("r1", "a", RecordingSink())
    await h.close()


@pytest.mark.parametrize("join_first", [True, False], ids=["join-then-leave", "leave-then-join"])
async def test_a_join_racing_the_last_leave_is_never_lost(join_first: bool) -> None:
    h = Harness()
    a, b = RecordingSink("a"), RecordingSink("b")
    joined = await h.connect("r1", "a", a)
    reply = LoopFuture()
    leave = Disconnect(RoomId("r1"), ClientId("a"), a)
    join = Connect(RoomId("r1"), ClientId("b"), b, reply)
    # Both in the same loop tick: the Hub sees the join before or after the room's RoomIdle.
    if join_first:
        h.hub.tell(join)
        joined.room.tell(leave)
    else:
        joined.room.tell(leave)
        h.hub.tell(join)
    joined_b = await reply
    room = await h.room("r1")
    assert room is joined_b.room and room.is_alive()
    assert b.types() == ["joined"]
    joined_b.room.tell(Relay(ClientId("b"), b, "offer", None, orjson.dumps(sample_data("offer"))))
    await h.settle(joined_b.room)
    assert h.sample("signaling_messages_total", type="offer", outcome="rejected", reason="no-recipients") == 1
    await h.close()


async def test_a_stub_that_never_connects_expires_and_its_room_is_reaped() -> None:
    h = Harness(limits=RoomLimits(stub_ttl=0.05))
    await h.reserve("r1", "a")
    room = await h.room("r1")
    assert room is not None
    await pykka_stopped(room)  # ExpireStubs fires, the room reports idle, the Hub stops it
    assert await h.room("r1") is None
    await h.close()


class SkewedClock:
    """``actors.room.time`` with a monotonic clock ``ahead`` seconds ahead of the loop's:
    uvloop's clock is cached per iteration (in whole ms), so a Room can read a later time
    when it sets a deadline than the loop did when it set the timer for it."""

    def __init__(self) -> None:
        self.ahead = 0.0
        self.perf_counter = time.perf_counter

    def monotonic(self) -> float:
        return time.monotonic() + self.ahead


@pytest.mark.parametrize("seat", ["held", "stub"])
async def test_a_seat_whose_timer_fires_just_before_it_is_due_still_expires(
    seat: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = SkewedClock()
    monkeypatch.setattr(room_module, "time", clock)
    h = Harness(limits=RoomLimits(stub_ttl=0.1, reconnect_grace=0.1))
    a, b = RecordingSink("a"), RecordingSink("b")
    joined = await h.connect("r1", "a", a)
    clock.ahead = 0.05  # the deadline is set 50 ms later than the timer
    if seat == "held":
        await h.connect("r1", "b", b)
        joined.room.tell(Disconnect(RoomId("r1"), ClientId("b"), b, abnormal=True))
    else:
        await h.reserve("r1", "b")
    await h.settle(joined.room)
    clock.ahead = 0.0  # so the timer fires 50 ms before the seat is due
    if seat == "held":
        await a.wait_for("peer-left")  # not a ghost for good
        assert h.sample("signaling_held_seats_total", outcome="expired") == 1
    joined.room.tell(Disconnect(RoomId("r1"), ClientId("a"), a))

    # The stub expired too, so the room is reaped. Asked of the Hub, not the room: a
    # poke at the room (ExpireStubs) would expire the seat itself.
    async def reaped() -> None:
        while await h.room("r1") is not None:
            await asyncio.sleep(0.01)  # the reaping is driven by a timer in the room

    await asyncio.wait_for(reaped(), scaled(5))
    await h.close()


async def test_a_failing_room_closes_its_clients_with_a_retry_code_and_is_rebuilt_on_next_use() -> None:
    h = Harness()
    a, b, other = RecordingSink("a"), RecordingSink("b"), RecordingSink("other")
    joined = await h.connect("r1", "a", a)
    await h.connect("r1", "b", b)
    healthy = await h.connect("r2", "x", other)
    await h.connect("r2", "y", RecordingSink("y"))

    joined.room.tell(object())  # a message no room handles: a bug, so the room fails
    assert await a.wait_closed() == (CLOSE_ROOM_FAILED, "room failed; reconnect")
    assert await b.wait_closed() == (CLOSE_ROOM_FAILED, "room failed; reconnect")
    assert not joined.room.is_alive()
    assert await h.room("r1") is None
    assert h.sample("signaling_room_failures_total") == 1

    # Another room never notices.
    healthy.room.tell(Relay(ClientId("x"), other, "offer", ClientId("y"), orjson.dumps(sample_data("offer"))))
    await h.settle(healthy.room)
    assert other.closed is None and healthy.room.is_alive()

    # The room id works again, in a fresh actor.
    rebuilt = await h.connect("r1", "a", RecordingSink())
    assert rebuilt.room is not joined.room and rebuilt.peers == ()
    await h.close()


async def test_a_join_that_reaches_the_hub_after_its_room_died_gets_a_fresh_room() -> None:
    h = Harness()
    joined = await h.connect("r1", "a", RecordingSink())
    b, reply = RecordingSink("b"), LoopFuture()
    # Same tick: the room fails before the Hub handles the join, and the Hub sees the
    # dead room before its RoomFailed message arrives.
    joined.room.tell(object())
    h.hub.tell(Connect(RoomId("r1"), ClientId("b"), b, reply))
    fresh = await reply
    assert fresh.room is not joined.room and fresh.room.is_alive() and fresh.peers == ()
    assert b.types() == ["joined"]
    await h.close()


async def test_frames_held_for_a_stub_that_never_connects_are_counted_when_it_expires() -> None:
    h = Harness(limits=RoomLimits(stub_ttl=0.05))
    await h.reserve("r1", "late")
    a = RecordingSink("a")
    joined = await h.connect("r1", "a", a)
    for _ in range(2):
        joined.room.tell(Relay(ClientId("a"), a, "offer", ClientId("late"), orjson.dumps(sample_data("offer"))))
    joined.room.tell(Disconnect(RoomId("r1"), ClientId("a"), a))
    await pykka_stopped(joined.room)  # the stub expired, the room emptied and was reaped
    assert h.sample("signaling_held_expired_total") == 2
    await h.close()


async def test_joins_queued_behind_a_failure_get_a_retryable_refusal() -> None:
    h = Harness()
    joined = await h.connect("r1", "a", RecordingSink())
    joined.room.tell(object())
    reply = LoopFuture()
    joined.room.tell(Connect(RoomId("r1"), ClientId("b"), RecordingSink(), reply))
    with pytest.raises(RoomUnavailable):
        await reply
    await h.close()


async def test_the_room_limit_refuses_new_rooms_but_not_joins_to_existing_ones() -> None:
    h = Harness(max_rooms=1)
    await h.connect("r1", "a", RecordingSink())
    with pytest.raises(ServerFull):
        await h.connect("r2", "a", RecordingSink())
    await h.connect("r1", "b", RecordingSink())
    await h.close()


async def test_shutdown_closes_every_client_and_refuses_later_joins() -> None:
    h = Harness()
    a, b = RecordingSink(), RecordingSink()
    joined = await h.connect("r1", "a", a)
    await h.connect("r2", "b", b)
    reply = LoopFuture()
    h.hub.tell(Shutdown(1001, "bye", reply))
    await reply
    assert await a.wait_closed() == (1001, "bye")
    assert await b.wait_closed() == (1001, "bye")
    with pytest.raises(ShuttingDown):
        await h.connect("r3", "c", RecordingSink())
    await pykka_stopped(joined.room)
    await runtime.stop(h.hub)


async def test_close_all_forgets_the_members_so_the_room_can_be_reaped() -> None:
    h = Harness()
    a = RecordingSink()
    joined = await h.connect("r1", "a", a)
    joined.room.tell(CloseAll(4000, "x"))
    await h.settle(joined.room)
    assert a.closed == (4000, "x")
    await h.close()


async def pykka_stopped(ref: pykka.ActorRef[Any]) -> None:
    """Wait for an actor to stop: asks to a stopped actor fail with ActorDeadError."""

    async def wait() -> None:
        while True:
            try:
                await ref.ask(ExpireStubs(), block=False)
            except pykka.ActorDeadError:
                return
            await asyncio.sleep(0.01)  # the stop is driven by a timer in the room

    await asyncio.wait_for(wait(), scaled(5))
