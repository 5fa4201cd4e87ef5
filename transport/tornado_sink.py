"""A ClientSink over one Tornado WebSocket connection.

The Room calls ``send`` on the IOLoop thread (the loop runtime), so it writes
straight into the connection's stream buffer. That buffer is capped
(``max_outbound_bytes``): a client that stops reading fills it and is closed with
1013 instead of growing the server's memory without bound.

The sink refers to its handler weakly: the handler holds the sink, so a strong
reference back would make every closed connection a reference cycle, freed only by
a full garbage collection (rare by design: see transport.server.tune_gc) rather than
by reference counting when the connection ends.
"""

from __future__ import annotations

import logging
import weakref
from asyncio import Future

from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from metrics.signaling import SignalingMetrics
from transport.wire_codes import CLOSE_TRY_AGAIN

logger = logging.getLogger(__name__)


def _write_text(handler: WebSocketHandler, frame: bytes) -> Future[None]:
    """``handler.write_message(frame)`` without the Task it makes per frame.

    Tornado's ``write_message`` writes the frame to the stream at once and returns a
    coroutine wrapped in a Task, whose only work is to turn the stream's
    StreamClosedError into WebSocketClosedError: a Task and a loop callback per frame,
    26 of each per call setup and one of each per relayed message (counted in
    docs/performance.md, "Issue 12"). The stream's own future tells the same (it fails
    if the connection dies with the frame unsent), so that is what we return. Raises as
    ``write_message`` does: WebSocketClosedError, StreamBufferFullError.
    """
    conn = handler.ws_connection
    if conn is None or conn.is_closing():
        raise WebSocketClosedError()
    if not isinstance(conn, WebSocketProtocol13) or conn._compressor is not None:
        return handler.write_message(frame)  # (no compression is offered: not reached)
    try:
        return conn._write_frame(True, 0x1, frame)  # FIN, a text frame, as write_message frames it
    except StreamClosedError:
        raise WebSocketClosedError() from None


class WebSocketSink:
    __slots__ = ("_handler", "_metrics", "client_id", "room_id")

    def __init__(self, handler: WebSocketHandler, metrics: SignalingMetrics, room_id: str, client_id: str) -> None:
        # Alive as long as Tornado holds the connection; gone means closed.
        self._handler = weakref.ref(handler)
        self._metrics = metrics
        self.room_id = room_id
        self.client_id = client_id

    def send(self, frame: bytes) -> None:
        handler = self._handler()
        try:
            if handler is None:
                raise WebSocketClosedError()
            written = _write_text(handler, frame)
        except WebSocketClosedError:
            # The client is already going; its Disconnect is on the way to the room.
            self._metrics.outbound_dropped("connection-closed")
        except StreamBufferFullError:
            self._metrics.outbound_dropped("slow-reader")
            self._metrics.slow_reader_disconnected()
            logger.warning("slow reader: closing", extra={"room": self.room_id, "client": self.client_id})
            self.close(CLOSE_TRY_AGAIN, "slow reader: outbound queue full")
        else:
            # A frame still buffered when the connection dies fails its future later:
            # count it, and retrieve the error so asyncio does not log it as a traceback.
            written.add_done_callback(self._written)

    def _written(self, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._metrics.outbound_dropped("connection-closed")

    def close(self, code: int, reason: str) -> None:
        """Close the connection; never raises, since a Room calls it."""
        handler = self._handler()
        conn = handler.ws_connection if handler is not None else None
        if handler is None or conn is None or conn.is_closing() or conn.stream is None:
            return
        self._metrics.closed(code)
        # The close frame must get through even when the outbound buffer is full (a slow
        # reader being replaced, say); Tornado aborts the stream if the client never
        # answers, so this cannot grow without bound.
        conn.stream.max_write_buffer_size = None
        try:
            handler.close(code, reason)
        except Exception:  # a broken stream: nothing left to close cleanly
            logger.warning(
                "closing a connection failed", exc_info=True, extra={"room": self.room_id, "client": self.client_id}
            )
            conn.stream.close()
