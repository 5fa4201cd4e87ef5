"""A ClientSink over one Tornado WebSocket connection.

The Room calls ``send`` on the IOLoop thread (the loop runtime), so it writes
straight into the connection's stream buffer: once per actor drain, all the frames
that drain delivered to this client in one write (``actors.runtime.after_drain``).
That buffer is capped (``max_outbound_bytes``): a client that stops reading fills
it and is closed with 1013 instead of growing the server's memory without bound.

The sink refers to its handler weakly: the handler holds the sink, so a strong
reference back would make every closed connection a reference cycle, freed only by
a full garbage collection (rare by design: see transport.server.tune_gc) rather than
by reference counting when the connection ends.
"""

from __future__ import annotations

import functools
import logging
import struct
import weakref
from asyncio import Future

from tornado.iostream import StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler, WebSocketProtocol13

from actors.runtime import after_drain
from metrics.signaling import SignalingMetrics
from transport.wire_codes import CLOSE_TRY_AGAIN

logger = logging.getLogger(__name__)

# A drain's frames for one client go out once they reach this size (a write is at most
# this plus one frame) or at the drain's end: one stream write larger than the outbound
# cap (max_outbound_bytes) would close a client that reads fine as a slow reader.
MAX_BATCH_BYTES = 64 * 1024


def text_frame_header(length: int) -> bytes:
    """The RFC 6455 (5.2) header of a final, unmasked text frame: what a server sends."""
    if length < 126:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return struct.pack("!BBH", 0x81, 126, length)
    return struct.pack("!BBQ", 0x81, 127, length)


def _write_text(handler: WebSocketHandler, frames: list[bytes]) -> Future[None]:
    """``handler.write_message(frame)`` for each of ``frames``, in one stream write.

    Tornado's ``write_message`` writes a frame to the stream at once and returns a
    coroutine wrapped in a Task, whose only work is to turn the stream's
    StreamClosedError into WebSocketClosedError: a Task and a loop callback per frame.
    And every stream write is a send() and a future of its own. Here the frames are
    framed as ``write_message`` frames them (``WebSocketProtocol13._write_frame``:
    FIN, text, no mask, no compression) and written together; the stream's future
    fails if the connection dies with them unsent. Raises as ``write_message`` does:
    WebSocketClosedError, StreamBufferFullError. (docs/performance.md, "Issue 12".)
    """
    conn = handler.ws_connection
    if conn is None or conn.is_closing() or conn.stream is None:
        raise WebSocketClosedError()
    if not isinstance(conn, WebSocketProtocol13) or conn._compressor is not None:
        for frame in frames[:-1]:  # (no compression is offered: not reached)
            handler.write_message(frame)
        return handler.write_message(frames[-1])
    if len(frames) == 1:
        data = text_frame_header(len(frames[0])) + frames[0]
    else:
        data = b"".join(part for frame in frames for part in (text_frame_header(len(frame)), frame))
    try:
        return conn.stream.write(data)
    except StreamClosedError:
        raise WebSocketClosedError() from None


class WebSocketSink:
    __slots__ = ("_batch", "_batch_bytes", "_handler", "_metrics", "client_id", "room_id")

    def __init__(self, handler: WebSocketHandler, metrics: SignalingMetrics, room_id: str, client_id: str) -> None:
        # Alive as long as Tornado holds the connection; gone means closed.
        self._handler = weakref.ref(handler)
        self._metrics = metrics
        self.room_id = room_id
        self.client_id = client_id
        # Frames a Room delivered during its drain in progress, written when it ends.
        self._batch: list[bytes] | None = None
        self._batch_bytes = 0

    def send(self, frame: bytes) -> None:
        if self._batch is None:
            if not after_drain(self.flush):  # not from an actor's drain (the handler's error frame)
                self._write([frame])
                return
            self._batch = []
        self._batch.append(frame)
        self._batch_bytes += len(frame)
        if self._batch_bytes >= MAX_BATCH_BYTES:
            self._write_batch()  # a burst goes out in pieces; the drain's flush does the rest

    def flush(self) -> None:
        """Write the frames batched during a drain; never raises."""
        batch, self._batch, self._batch_bytes = self._batch, None, 0
        if batch:
            self._write(batch)

    def _write_batch(self) -> None:
        # Emptied before the write: a slow reader's close() flushes, and must not resend it.
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        if batch:
            self._write(batch)

    def _write(self, frames: list[bytes]) -> None:
        handler = self._handler()
        try:
            if handler is None:
                raise WebSocketClosedError()
            written = _write_text(handler, frames)
        except WebSocketClosedError:
            # The client is already going; its Disconnect is on the way to the room.
            self._metrics.outbound_dropped("connection-closed", len(frames))
        except StreamBufferFullError:
            self._metrics.outbound_dropped("slow-reader", len(frames))
            self._metrics.slow_reader_disconnected()
            logger.warning("slow reader: closing", extra={"room": self.room_id, "client": self.client_id})
            self.close(CLOSE_TRY_AGAIN, "slow reader: outbound queue full")
        else:
            # Sent already (the usual case) or still buffered: a buffered write fails its
            # future if the connection dies first; count those frames then.
            if not written.done():
                written.add_done_callback(functools.partial(self._written, len(frames)))
            elif not written.cancelled() and written.exception() is not None:
                self._metrics.outbound_dropped("connection-closed", len(frames))

    def _written(self, frames: int, future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self._metrics.outbound_dropped("connection-closed", frames)

    def close(self, code: int, reason: str) -> None:
        """Close the connection; never raises, since a Room calls it."""
        self.flush()  # frames delivered before the close go out before it
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
