"""Closed connections leave nothing of ours behind: handlers, sinks, rooms (issue 10).

The whole service in this process with real WebSocket clients; the cyclic collector
is off, so whatever only a reference cycle keeps alive counts as leaked (in production
it would wait minutes for a full collection: see transport.server.tune_gc).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pykka

from actors.ids import RoomId
from actors.messages import ExpireStubs, GetRoom
from tests.memory import outlived, own_objects, refcounting_only
from tests.support import ServerFactory, connect, http, join, sample_data, scaled
from transport.server import Server
from transport.ws import SignalingSocket

CYCLES = 20


async def room_ref(server: Server, room: str) -> pykka.ActorRef[Any] | None:
    ref: pykka.ActorRef[Any] | None = await server.ctx.ask_hub(lambda reply: GetRoom(RoomId(room), reply))
    return ref


async def one_call(server: Server, n: int) -> None:
    """Two peers relay offer/answer and candidates; a frame and a REST body fail their
    schemas; a third connection is refused (id taken); b drops without a close handshake
    and comes back within its grace; both leave. Returns once every socket closed and
    the room has been reaped and stopped."""
    room = f"room-{n}"
    a, _ = await join(server, room, "a")
    b, _ = await join(server, room, "b")
    await a.recv_type("peer-joined")
    a.signal("offer", to="b")
    await b.recv_type("offer")
    b.signal("answer", to="a")
    await a.recv_type("answer")
    for i in range(10):
        a.signal("ice-candidate", to="b", data=sample_data("ice-candidate", i))
        b.signal("ice-candidate", to="a", data=sample_data("ice-candidate", i))
    for client in (a, b):
        for _ in range(10):
            await client.recv_type("ice-candidate")
    # Refused input: its exceptions must not keep the handler alive either.
    a.send({"type": "offer", "to": "b", "data": {"type": "offer"}})  # no sdp: the schema refuses it
    assert (await a.recv_type("error"))["data"]["code"] == "invalid-message"
    status, _ = await http(server, "POST", "/rooms/join", {"roomId": "not an id!"})
    assert status == 400
    taken = await connect(server, room, "a")
    assert (await taken.closed())[0] == 4409  # a refused join raises through the join's future
    # Gone without a close frame: Tornado's client has no public call for that, so close
    # its (undocumented) protocol's IOStream, as a dropped network would.
    b.conn.protocol.stream.close()  # type: ignore[union-attr]
    b2, peers = await join(server, room, "b")  # resumes the held seat
    assert peers == ["a"]
    ref = await room_ref(server, room)
    assert ref is not None
    a.close()
    b2.close()
    await b2.closed()
    await a.closed()
    # Closed on our side does not mean handled on the server's: wait for on_close.
    if server.ctx.open_sockets:
        await asyncio.wait_for(server.ctx.sockets_closed.wait(), scaled(5))
    try:
        await ref.ask(ExpireStubs(), block=False)  # the room has handled the leaves
    except pykka.ActorDeadError:
        pass
    assert await room_ref(server, room) is None  # reaped by the Hub, told to stop
    try:
        await ref.ask(ExpireStubs(), block=False)
    except pykka.ActorDeadError:
        pass  # stopped (not pytest.raises: it keeps the traceback, and our frames, alive)
    else:
        raise AssertionError("the reaped room still answered")


async def test_connections_that_came_and_went_leave_no_object_of_ours_alive_without_the_cyclic_gc(
    make_server: ServerFactory,
) -> None:
    server = await make_server(reconnect_grace=scaled(30))
    with refcounting_only():
        await one_call(server, -1)  # first use: metric children, caches
        baseline = own_objects()
        for n in range(CYCLES):
            await one_call(server, n)
        leaked = outlived(baseline, CYCLES)
    assert not leaked, leaked


async def test_a_connected_socket_keeps_neither_the_handshake_headers_nor_a_sprawling_handler_dict(
    server: Server,
) -> None:
    # Issue 12: the upgrade's request headers, query and response headers stay reachable
    # for the connection's life unless open() sheds them, ~2 KB per connection; and past
    # 30 attributes CPython gives the handler a 64-slot dict instead of a compact one.
    if True:
        a, _ = await join(server, "shed", "a")
        handlers = [h for h in gc.get_objects() if isinstance(h, SignalingSocket) and h.client_id == "a"]
        assert len(handlers) == 1
        handler = handlers[0]
        assert len(handler.request.headers) == 0 and not handler.request.query_arguments
        assert not handler.request.arguments and len(handler._headers) == 0
        assert handler.request.remote_ip and handler.request.uri  # kept for Tornado's log_exception
        assert len(vars(handler)) <= 30, sorted(vars(handler))
        a.close()
        await a.closed()
