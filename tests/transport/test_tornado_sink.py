"""The sink a Room writes to: it must never raise into the Room."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from tornado.iostream import StreamBufferFullError

from actors import runtime
from actors.messages import Relay
from actors.runtime import LoopActor
from metrics.signaling import SignalingMetrics
from tests.support import Client, Closed, join, running_server, scaled
from transport.tornado_sink import MAX_BATCH_BYTES, WebSocketSink, text_frame_header
from transport.ws import SignalingSocket


# Stand-ins for the parts of Tornado's WebSocketHandler that WebSocketSink reads:
# ws_connection.stream (the IOStream: max_write_buffer_size, close) is not a public
# Tornado API, but it is where the outbound cap lives (transport/tornado_sink.py).
class _Stream:
    def __init__(self) -> None:
        self.max_write_buffer_size: int | None = 16
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Connection:
    def __init__(self) -> None:
        self.stream = _Stream()

    def is_closing(self) -> bool:
        return self.stream.closed


class _Handler:
    """Stands in for a Tornado handler whose outbound buffer is full to the byte, a
    state a real socket reaches only by timing (a reviewer did reach it: the close
    frame raised StreamBufferFullError inside the Room and failed it)."""

    def __init__(self) -> None:
        self.ws_connection = _Connection()
        self.buffer_limit_when_closing: Any = "unset"

    def close(self, code: int, reason: str) -> None:
        self.buffer_limit_when_closing = self.ws_connection.stream.max_write_buffer_size
        if self.ws_connection.stream.max_write_buffer_size is not None:
            raise StreamBufferFullError("Reached maximum write buffer size")


def test_closing_a_connection_with_a_full_buffer_lifts_the_cap_and_never_raises() -> None:
    handler = _Handler()
    sink = WebSocketSink(handler, SignalingMetrics(CollectorRegistry()), "r", "c")  # type: ignore[arg-type]
    sink.close(4410, "replaced")
    assert handler.buffer_limit_when_closing is None  # the close frame may exceed the cap


def test_a_close_that_fails_anyway_tears_the_stream_down_instead_of_raising() -> None:
    handler = _Handler()

    def broken(code: int, reason: str) -> None:
        raise OSError("broken pipe")

    handler.close = broken  # type: ignore[method-assign]
    sink = WebSocketSink(handler, SignalingMetrics(CollectorRegistry()), "r", "c")  # type: ignore[arg-type]
    sink.close(4410, "replaced")
    assert handler.ws_connection.stream.closed


async def test_a_frame_sent_through_the_sink_costs_no_task_and_arrives_as_a_text_frame() -> None:
    # Issue 12: Tornado's write_message wraps every frame in a Task (a loop callback
    # more per frame); the sink writes the frame to the stream itself.
    async with running_server() as server:
        a, _ = await join(server, "sink", "a")
        handler = next(h for h in gc.get_objects() if isinstance(h, SignalingSocket) and h.client_id == "a")
        assert handler.sink is not None
        tasks_before = len(asyncio.all_tasks())
        for n in range(5):
            handler.sink.send(orjson.dumps({"type": "peer-joined", "data": {"clientId": f"p{n}"}}))
        assert len(asyncio.all_tasks()) == tasks_before
        for n in range(5):
            assert (await a.recv_type("peer-joined"))["data"]["clientId"] == f"p{n}"
        a.close()
        await a.closed()
        handler.sink.send(b'{"type":"peer-left"}')  # closed: counted as dropped, never raised


def handler_of(client_id: str) -> SignalingSocket:
    return next(h for h in gc.get_objects() if isinstance(h, SignalingSocket) and h.client_id == client_id)


def test_frame_headers_use_the_length_encodings_of_rfc_6455() -> None:
    assert text_frame_header(0) == b"\x81\x00"
    assert text_frame_header(125) == b"\x81\x7d"
    assert text_frame_header(126) == b"\x81\x7e\x00\x7e"
    assert text_frame_header(65535) == b"\x81\x7e\xff\xff"
    assert text_frame_header(65536) == b"\x81\x7f" + (65536).to_bytes(8, "big")


@asynccontextmanager
async def b_writes_recorded(room: str) -> AsyncIterator[tuple[Client, Client, SignalingSocket, list[int]]]:
    """a and b in ``room``; yields them, a's handler and the size of every stream write
    to b's socket. Counting the writes needs the stream itself (no public hook): its
    method is wrapped."""
    async with running_server() as server:
        a, _ = await join(server, room, "a")
        b, _ = await join(server, room, "b")
        await a.recv_type("peer-joined")
        sender, receiver = handler_of("a"), handler_of("b")
        assert sender.room is not None and sender.sink is not None and receiver.ws_connection is not None
        stream = receiver.ws_connection.stream
        writes: list[int] = []
        real_write = stream.write
        stream.write = lambda data: (writes.append(len(data)), real_write(data))[1]  # type: ignore[method-assign]
        yield a, b, sender, writes


async def test_the_frames_one_drain_delivers_to_a_client_leave_in_one_socket_write() -> None:
    # Issue 12: a peer's trickled candidates arrive in one read and are relayed in one
    # drain of the Room; they leave in one stream write (one send()), not one each.
    async with b_writes_recorded("batch") as (a, b, sender, writes):
        assert sender.room is not None
        sizes = [10, 200, 70_000]  # the three header lengths of RFC 6455
        for i, n in enumerate(sizes):  # told together, so the Room handles them in one drain
            data = orjson.dumps({"candidate": "x" * n, "i": i})
            sender.room.tell(Relay("a", sender.sink, "ice-candidate", "b", data))
        for i, n in enumerate(sizes):
            frame = await b.recv_type("ice-candidate")
            assert frame["from"] == "a" and frame["data"] == {"candidate": "x" * n, "i": i}
        assert len(writes) == 1
        b.signal("answer", "a")  # and the connection reads and writes on as before
        assert (await a.recv_type("answer"))["from"] == "b"


async def test_a_burst_larger_than_the_outbound_cap_goes_out_in_pieces_to_a_client_that_reads() -> None:
    # One write of a whole drain's frames could exceed max_outbound_bytes (1 MiB) and
    # close a client that reads fine as a slow reader; a burst is written in pieces.
    async with b_writes_recorded("burst") as (a, b, sender, writes):
        assert sender.room is not None
        frames = 20  # 20 x 60 KB: more than the 1 MiB cap in one drain
        for i in range(frames):
            data = orjson.dumps({"type": "offer", "sdp": "v" * 60_000, "i": i})
            sender.room.tell(Relay("a", sender.sink, "offer", "b", data))
        for i in range(frames):
            assert (await b.recv_type("offer", timeout=10))["data"]["i"] == i
        assert len(writes) == frames // 2 and max(writes) < MAX_BATCH_BYTES + 61_000  # two frames a write
        b.signal("answer", "a")  # b was not closed as a slow reader
        assert (await a.recv_type("answer"))["from"] == "b"


class SendThenClose(LoopActor):
    def __init__(self, sink: WebSocketSink) -> None:
        super().__init__()
        self.sink = sink

    def on_receive(self, message: object) -> None:
        self.sink.send(b'{"type":"peer-left","data":{"clientId":"gone"}}')
        self.sink.close(4410, "replaced")


async def test_a_frame_batched_before_a_close_in_the_same_drain_goes_out_before_the_close() -> None:
    async with running_server() as server:
        a, _ = await join(server, "order", "a")
        sink = handler_of("a").sink
        assert sink is not None
        ref = SendThenClose.start(sink)
        ref.tell("go")
        assert (await a.recv_type("peer-left"))["data"]["clientId"] == "gone"
        with pytest.raises(Closed) as closed:
            await a.recv(scaled(5))
        assert closed.value.code == 4410
        assert await runtime.stop(ref)
