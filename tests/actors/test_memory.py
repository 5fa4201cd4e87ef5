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
    """Three REST-style reservations, two connections, offer/answer and 10 candidates
    each way; the third stub never connects and expires; b drops, comes back within
    its grace, drops again and does not (so its grace timer fires); a leaves. Returns
    once the Hub has reaped the room and the room has stopped."""
    room = f"room-{n}"
    a, b = RecordingSink("a"), RecordingSink("b")
    for client in ("a", "b", "c"):
        await h.reserve(room, client)
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
    ref.tell(Disconnect(RoomId(room), ClientId("b"), b, abnormal=True))  # its seat is held
    b2 = RecordingSink("b2")
    await h.connect(room, "b", b2)  # resumes the held seat (or, on a slow machine, takes a new one)
    ref.tell(Disconnect(RoomId(room), ClientId("b"), b2, abnormal=True))
    await a.wait_for("peer-left")  # the grace timer fired (and the stub's TTL timer before it)
    ref.tell(Disconnect(RoomId(room), ClientId("a"), a))
    await h.settle(ref)  # the room handled the last leave and told the Hub it is idle
    assert await h.room(room) is None  # the Hub reaped it (and told it to stop)
    try:
        await ref.ask(ExpireStubs(), block=False)  # queued behind the stop, or refused at once
    except pykka.ActorDeadError:
        pass  # the room is gone (not pytest.raises: it keeps the traceback, and our frames, alive)
    else:
        pytest.fail("the reaped room still answered")
    assert b.types()[:2] == ["joined", "offer"] and b.types().count("ice-candidate") == CANDIDATES


async def test_rooms_that_came_and_went_leave_no_object_of_ours_alive_without_the_cyclic_gc() -> None:
    # Short timers, so that they fire within the test: a fired timer once kept its room alive.
    h = Harness(limits=RoomLimits(stub_ttl=0.05, reconnect_grace=0.1))
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
