"""The WebSocket handler: query -> join, frame -> schema -> tell, close -> leave.

It holds no room state: the Room actor owns membership and routing. Frames a client
gets wrong are answered with an error frame and the socket stays open; only fatal
conditions (bad token, id taken, room full, shutdown) close it, with a 4xxx code.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import urlsplit

import pykka
from tornado.web import HTTPError
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from actors.errors import (
    CLOSE_POLICY,
    CLOSE_ROOM_FAILED,
    BinaryFrame,
    FrameError,
    FrameTooLarge,
    FromMismatch,
    JoinRefused,
    RateLimited,
    RoomUnavailable,
    ShuttingDown,
    TooManyRequests,
    Unauthorized,
)
from actors.ids import ClientId, RoomId
from actors.messages import Connect, Disconnect, Joined, Relay
from actors.room_state import error_frame
from transport.context import ServiceContext
from transport.limits import TokenBucket
from transport.schemas import parse_signal, parse_ws_query
from transport.tornado_sink import WebSocketSink

logger = logging.getLogger(__name__)


class AbortAwareProtocol(WebSocketProtocol13):
    """Tornado's protocol, noting whether the connection ended without a handshake.

    Tornado ends every connection through ``_abort()``, but only a clean close has
    seen the client's close frame (``client_terminated``) by then; a dropped TCP
    connection or a ping timeout has not. That decides between peer-left now and a
    reconnect grace period. (A method here rather than a closure patched onto the
    connection: a closure stored on the connection that refers to the connection is a
    reference cycle, and closed connections must be freed by reference counting.)
    """

    def _abort(self) -> None:
        handler = self.handler
        if not self.client_terminated and isinstance(handler, SignalingSocket):
            handler.aborted = True
            if not self.server_terminated and self.stream is not None and not self.stream.closed():
                handler.ctx.metrics.closed(1002)  # a protocol violation: Tornado drops it
        super()._abort()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        # Tornado also closes on its own: 1009 for a frame over the hard cap, 1000 "ping
        # timed out". Count those with the closes we make, which come through the
        # handler's close() (closing_by_us) and are counted there.
        handler = self.handler
        if (isinstance(handler, SignalingSocket) and not handler.closing_by_us
                and not self.server_terminated and not self.client_terminated):
            handler.ctx.metrics.closed(code if code is not None else 1000)
        super().close(code, reason)


class SignalingSocket(WebSocketHandler):
    def initialize(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # A Room actor, or in cluster mode a RemoteRoom relaying to the room's owner.
        # Set once joined; _leave() clears it (on_close). The handler itself is freed by
        # reference counting when Tornado drops the connection: it must be in no cycle.
        self.room: pykka.ActorRef[Any] | None = None
        self.room_id: RoomId | None = None
        self.client_id: ClientId | None = None
        # Owned here; the Room holds it until the Disconnect from on_close removes the
        # member (or the member's grace runs out). It refers back to us weakly.
        self.sink: WebSocketSink | None = None
        self.aborted = False  # the connection ended without a close handshake
        self.ip: str | None = None  # counted against max_connections_per_ip while set
        self.bucket = TokenBucket(ctx.settings.rate_limit, ctx.settings.rate_burst, time.perf_counter())
        self.refused_in_a_row = 0
        self.closing_by_us = False  # set by close(): tells our closes from Tornado's own

    def check_origin(self, origin: str) -> bool:
        # Only browsers send Origin; native clients (aiortc, apps) have none and never get here.
        allowed = self.ctx.settings.origins
        if "*" in allowed:
            return True
        if not allowed:
            return super().check_origin(origin)  # same origin only
        parts = urlsplit(origin.lower())
        return f"{parts.scheme}://{parts.netloc}" in allowed

    def prepare(self) -> None:
        # Cheap refusal before the upgrade; open() counts exactly.
        self.ctx.check_proxy_headers(self.request)
        ip = self.ctx.client_ip(self.request)
        if self.ctx.sockets_per_ip.get(ip, 0) >= self.ctx.settings.max_connections_per_ip:
            self.ctx.metrics.join("ws", TooManyRequests.code)
            raise HTTPError(429, reason="too many connections from this address")

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        protocol = super().get_websocket_protocol()
        if type(protocol) is WebSocketProtocol13:
            # The same object with one method overridden (no state of its own), so
            # Tornado's construction of it stays Tornado's.
            protocol.__class__ = AbortAwareProtocol
        return protocol

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        code = {403: "forbidden", 429: TooManyRequests.code}.get(status_code, "bad-request")
        self.finish(json.dumps({"error": {"code": code, "message": self._reason}}))

    async def open(self, *args: str, **kwargs: str) -> None:
        self.ctx.socket_opened()
        settings = self.ctx.settings
        self._watch_connection()
        try:
            if self.ctx.draining:
                raise ShuttingDown()
            ip = self.ctx.client_ip(self.request)
            if not self.ctx.ip_connected(ip):
                raise TooManyRequests()
            self.ip = ip
            room_id, client_id, token = parse_ws_query(self.request.query_arguments)
            # proof: the expiry of a valid token, which lets the client claim a seat
            # reserved for it or take over its own open connection.
            proof = None
            if token is not None:
                if settings.token_mode:
                    proof = self.ctx.tokens.verify(token, room_id, client_id)
                else:
                    # Open mode admits anyone. Its tokens are signed with a per-process
                    # key: after a restart or on another backend they no longer verify,
                    # and the client then simply counts as one without a token.
                    proof = self.ctx.tokens.proof(token, room_id, client_id)
            elif settings.token_mode:
                raise Unauthorized("token required")
            self.room_id, self.client_id = room_id, client_id
            self.sink = WebSocketSink(self, self.ctx.metrics, room_id, client_id)
            # Signaling is many small frames each waited for (10 ICE candidates each way):
            # Nagle's algorithm would hold each one back for the previous one's ACK.
            self.set_nodelay(True)
            sink = self.sink
            if self.ctx.cluster is not None:  # the room may live on another backend
                joined: Joined = await self.ctx.cluster.join(room_id, client_id, sink, proof)
            else:
                joined = await self.ctx.ask_hub(lambda reply: Connect(room_id, client_id, sink, reply, proof))
        except JoinRefused as refused:
            self.ctx.metrics.join("ws", refused.code)
            self._close(refused.close_code, f"{refused.code}: {refused.detail}")
            return
        except TimeoutError:
            # The Connect may still be handled later: undo it, in order, through the Hub.
            if self.room_id is not None and self.client_id is not None and self.sink is not None:
                self.ctx.hub.tell(Disconnect(self.room_id, self.client_id, self.sink))
            self.ctx.metrics.join("ws", RoomUnavailable.code)
            self._close(RoomUnavailable.close_code, "room did not answer; retry")
            return
        except Exception:
            # A bug: Tornado would abort the stream without on_close (leaking the
            # per-IP count); close it ourselves so on_close runs and cleans up.
            logger.exception("join failed", extra={"room": self.room_id, "client": self.client_id})
            self.ctx.metrics.join("ws", RoomUnavailable.code)
            self._close(RoomUnavailable.close_code, "join failed; retry")
            return
        self.ctx.metrics.join("ws", "ok")
        self.room = joined.room
        self.ctx.metrics.client_connected()
        # (Tornado reads no frame, and so sees no close, until open() has returned: a
        # client that left meanwhile is handled by on_close like any other.)

    def on_message(self, message: str | bytes) -> None:
        if self.room is None or self.sink is None:
            # Closing after a refused join: Tornado reads frames until the close
            # handshake ends. Nobody is there to answer; count them.
            self.ctx.metrics.frame_received("unparsed")
            self.ctx.metrics.inbound_dropped("join-refused")
            return
        received_at = time.perf_counter()
        try:
            if not self.bucket.take(received_at):
                self.ctx.metrics.frame_received("unparsed")  # refused before parsing, by design
                self.refused_in_a_row += 1
                if self.refused_in_a_row >= self.ctx.settings.rate_burst:
                    self.ctx.metrics.frame_error(RateLimited.code)
                    self._close(CLOSE_POLICY, "rate-limited: too many frames for too long")
                    return
                raise RateLimited()
            self.refused_in_a_row = 0
            if isinstance(message, bytes):
                raise BinaryFrame()
            limit = self.ctx.settings.max_frame_bytes
            # The cap is in bytes: a UTF-8 character takes up to 4, so only long frames
            # need encoding to be measured.
            if len(message) * 4 > limit and len(message.encode()) > limit:
                raise FrameTooLarge(f"frame is larger than {limit} bytes")
            signal = parse_signal(message)
            self.ctx.metrics.frame_received(signal.type)
            if signal.sender is not None and signal.sender != self.client_id:
                raise FromMismatch()
        except FrameError as error:
            if not isinstance(error, (FromMismatch, RateLimited)):  # those were never parsed / were valid
                self.ctx.metrics.frame_received("invalid")
            self.ctx.metrics.frame_error(error.code)
            self.sink.send(error_frame(error))
            return
        assert self.client_id is not None
        try:
            self.room.tell(Relay(self.client_id, self.sink, signal.type, signal.to, signal.data, received_at))
        except pykka.ActorDeadError:
            # The room failed after we joined; it closes its clients, but make sure.
            self.ctx.metrics.message(signal.type, "rejected", "room-failed")
            self.ctx.metrics.frame_relayed("rejected")
            self._close(CLOSE_ROOM_FAILED, "room failed; reconnect")

    def on_close(self) -> None:
        self.ctx.socket_closed()
        if self.ip is not None:
            self.ctx.ip_disconnected(self.ip)
        if self.room is not None:
            self._leave()

    def _leave(self) -> None:
        assert self.room is not None and self.room_id is not None and self.client_id is not None and self.sink
        self.ctx.metrics.client_disconnected()
        try:
            self.room.tell(Disconnect(self.room_id, self.client_id, self.sink, abnormal=self.aborted))
        except pykka.ActorDeadError:
            pass  # a failed or stopped room has forgotten its members already
        self.room = None

    def _watch_connection(self) -> None:
        conn = self.ws_connection
        if conn is None:
            return
        # Bound what a client that stops reading can make us buffer (see tornado_sink).
        conn.stream.max_write_buffer_size = self.ctx.settings.max_outbound_bytes

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closing_by_us = True
        super().close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        if self.ws_connection is not None and not self.ws_connection.is_closing():
            self.ctx.metrics.closed(code)
        # Close reasons must fit in a 125-byte control frame.
        self.close(code, reason.encode()[:120].decode(errors="ignore"))
