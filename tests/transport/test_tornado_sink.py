"""The sink a Room writes to: it must never raise into the Room."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from tornado.iostream import StreamBufferFullError

from metrics.signaling import SignalingMetrics
from transport.tornado_sink import WebSocketSink


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
