"""Tier 2 memory test: rooms that came and went leave nothing of ours behind.

Real Hub and Room actors on a running loop; the cyclic collector is off, so an object
kept alive only by a reference cycle counts as leaked (in production it would wait
minutes for a full collection: see transport.server.tune_gc).
"""

from __future__ import annotations

import orjson
import pykka
import pytest

from actors.ids import ClientId, RoomId
from actors.messages import Disconnect, ExpireStubs, Relay
from actors.room_state import RoomLimits
from tests.actors.test_hub import Harness
from tests.memory import outlived, own_objects, refcounting_only
from tests.recording import RecordingSink
from tests.support import sample_data

CYCLES = 30
CANDIDATES = 10


async def one_call(h: Harness, n: int) -> None:
    """REST-style reservations, two connections, offer/answer and 10 candidates each way;
    then a leaves cleanly, b drops, comes back within its grace and leaves too. Returns
    once the Hub has reaped the room and the room has stopped."""
    room = f"room-{n}"
    a, b = RecordingSink("a"), RecordingSink("b")
    await h.reserve(room, "a")
    await h.reserve(room, "b")
    joined = await h.connect(room, "a", a)
    await h.connect(room, "b", b)
    ref = joined.room
    del joined

    def relay(sender: str, sink: RecordingSink, type_: str, to: str, data: dict[str, object]) -> None:
        ref.tell(Relay(ClientId(sender), sink, type_, ClientId(to), orjson.dumps(data)))

    relay("a", a, "offer", "b", sample_data("offer"))
    relay("b", b, "answer", "a", sample_data("answer"))
    for i in range(CANDIDATES):
        relay("a", a, "ice-candidate", "b", sample_data("ice-candidate", i))
        relay("b", b, "ice-candidate", "a", sample_data("ice-candidate", i))
    ref.tell(Disconnect(RoomId(room), ClientId("a"), a))
    ref.tell(Disconnect(RoomId(room), ClientId("b"), b, abnormal=True))  # its seat is held
    b2 = RecordingSink("b2")
    await h.connect(room, "b", b2)  # resumes the held seat (its grace timer stays pending)
    ref.tell(Disconnect(RoomId(room), ClientId("b"), b2))
    await h.settle(ref)  # the room handled the last leave and told the Hub it is idle
    assert await h.room(room) is None  # the Hub reaped it (and told it to stop)
    try:
        await ref.ask(ExpireStubs(), block=False)  # queued behind the stop, or refused at once
    except pykka.ActorDeadError:
        pass  # the room is gone (not pytest.raises: it keeps the traceback, and our frames, alive)
    else:
        pytest.fail("the reaped room still answered")
    assert b2.types()[-1] == "ice-candidate" or "joined" in b2.types()
    assert len(a.frames) == len(b.frames) == 2 + 1 + CANDIDATES  # joined, peer-joined/offer..., candidates


async def test_rooms_that_came_and_went_leave_no_object_of_ours_alive_without_the_cyclic_gc() -> None:
    h = Harness(limits=RoomLimits(reconnect_grace=30.0))
    try:
        with refcounting_only():
            await one_call(h, -1)  # first use: lazily made metric children, caches
            baseline = own_objects()
            for n in range(CYCLES):
                await one_call(h, n)
            leaked = outlived(baseline, CYCLES)
        assert not leaked, leaked
    finally:
        await h.close()
