"""The sink a Room writes to: it must never raise into the Room."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import orjson
from prometheus_client import CollectorRegistry
from tornado.iostream import StreamBufferFullError

from metrics.signaling import SignalingMetrics
from tests.support import join, running_server
from transport.tornado_sink import WebSocketSink
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
