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
from tornado.httputil import HTTPHeaders
from tornado.iostream import IOStream
from tornado.web import HTTPError
from tornado.websocket import WebSocketHandler, WebSocketProtocol, WebSocketProtocol13

from actors.errors import TooManyRequests
from actors.ids import ClientId, RoomId
from actors.messages import Connect, Disconnect, Joined, Relay, RoomRef
from actors.room_state import error_frame
from transport.admission import admit, join_failure
from transport.context import ServiceContext
from transport.inbound import InboundFrames
from transport.tornado_sink import WebSocketSink
from transport.wire_codes import CLOSE_ROOM_FAILED

logger = logging.getLogger(__name__)


class AbortAwareProtocol(WebSocketProtocol13):
    """Tornado's protocol, noting whether the connection ended without a handshake.

    Tornado ends every connection through ``_abort()``, but only a clean close has
    seen the client's close frame (``client_terminated``) by then; a dropped TCP
    connection or a ping timeout has not. That decides between peer-left now and a
    reconnect grace period. (A method here rather than a closure patched onto the
    connection: a closure stored on the connection that refers to the connection is a
    reference cycle, and closed connections must be freed by reference counting.)

    Tornado has no public hook for "ended without a close handshake" (``on_close`` runs
    for both, and ``close_code`` is None for a close frame without a code as well), so
    this overrides the private ``_abort``, installed through the public
    ``get_websocket_protocol``. If Tornado stops calling it, tests/transport/test_ws.py's
    test_a_client_that_drops_and_returns_within_the_grace_... fails (no abnormal drop).
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
        if (
            isinstance(handler, SignalingSocket)
            and not handler.closing_by_us
            and not self.server_terminated
            and not self.client_terminated
        ):
            handler.ctx.metrics.closed(code if code is not None else 1000)
        super().close(code, reason)


class SignalingSocket(WebSocketHandler):
    def initialize(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        # A Room actor, or in cluster mode a RemoteRoom relaying to the room's owner.
        # Set once joined; _leave() clears it (on_close). The handler itself is freed by
        # reference counting when Tornado drops the connection: it must be in no cycle.
        self.room: RoomRef | None = None
        self.room_id: RoomId | None = None
        self.client_id: ClientId | None = None
        # Owned here; the Room holds it until the Disconnect from on_close removes the
        # member (or the member's grace runs out). It refers back to us weakly.
        self.sink: WebSocketSink | None = None
        self.aborted = False  # the connection ended without a close handshake
        self.ip: str | None = None  # counted against max_connections_per_ip while set
        self.inbound = InboundFrames(
            ctx.settings.rate_limit, ctx.settings.rate_burst, ctx.settings.max_frame_bytes, time.perf_counter()
        )
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

    def _detach_stream(self) -> IOStream:
        # Tornado's version also shadows seven HTTP methods (write, finish, set_header...)
        # with instance attributes that raise. Seven more attributes push the handler past
        # the 30 that CPython keeps in a compact, key-sharing instance dict: the dict then
        # grows to a 64-slot table, 1.6 KB per connection instead of ~0.3 KB (measured with
        # tracemalloc, docs/performance.md "Issue 12"). Nothing of ours calls those methods
        # after the upgrade, and a call would still fail loudly: the detached HTTP
        # connection has no stream left to write to.
        return self.detach()

    def _shed_handshake(self) -> None:
        """Free what only the HTTP handshake needed, ~2 KB per connection.

        Tornado keeps the upgrade's coroutine (``WebSocketHandler.get``) suspended for
        the socket's whole life, and it holds the request headers in a local: so the
        header mappings are emptied in place rather than replaced. The request line
        (method, uri, remote_ip) stays for Tornado's ``log_exception``.
        """
        request = self.request
        HTTPHeaders.__init__(request.headers)  # Upgrade, Sec-WebSocket-Key, User-Agent...
        request.query_arguments.clear()  # roomId, clientId, token: parsed by admit()
        request.arguments.clear()
        HTTPHeaders.__init__(self._headers)  # the 101 response's headers, long sent
        self.ui = None  # type: ignore[assignment]  # templates: Tornado's own _break_cycles does this at close

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json")
        code = {403: "forbidden", 429: TooManyRequests.code}.get(status_code, "bad-request")
        self.finish(json.dumps({"error": {"code": code, "message": self._reason}}))

    async def open(self, *args: str, **kwargs: str) -> None:
        ctx = self.ctx
        ctx.socket_opened()
        self._watch_connection()
        try:
            ip = ctx.client_ip(self.request)
            ip_admitted = not ctx.draining and ctx.ip_connected(ip)
            if ip_admitted:
                self.ip = ip
            admission = admit(
                self.request.query_arguments,
                draining=ctx.draining,
                ip_admitted=ip_admitted,
                token_mode=ctx.settings.token_mode,
                tokens=ctx.tokens,
            )
            self._shed_handshake()
            room_id, client_id = self.room_id, self.client_id = admission.room_id, admission.client_id
            sink = self.sink = WebSocketSink(self, ctx.metrics, room_id, client_id)
            # Signaling is many small frames each waited for (10 ICE candidates each way):
            # Nagle's algorithm would hold each one back for the previous one's ACK.
            self.set_nodelay(True)
            if ctx.cluster is not None:  # the room may live on another backend
                joined: Joined = await ctx.cluster.join(room_id, client_id, sink, admission.proof)
            else:
                joined = await ctx.ask_hub(lambda reply: Connect(room_id, client_id, sink, reply, admission.proof))
        except Exception as error:  # join_failure() tells refusals, timeouts and bugs apart
            failure = join_failure(error)
            if failure.bug:
                logger.exception("join failed", extra={"room": self.room_id, "client": self.client_id})
            if failure.undo and self.room_id is not None and self.client_id is not None and self.sink is not None:
                # The Connect may still be handled later: undo it, in order, through the Hub.
                ctx.hub.tell(Disconnect(self.room_id, self.client_id, self.sink))
            ctx.metrics.join("ws", failure.outcome)
            self._close(failure.close_code, failure.reason)
            return
        ctx.metrics.join("ws", "ok")
        self.room = joined.room
        ctx.metrics.client_connected()
        # (Tornado reads no frame, and so sees no close, until open() has returned: a
        # client that left meanwhile is handled by on_close like any other.)

    def on_message(self, message: str | bytes) -> None:
        metrics = self.ctx.metrics
        if self.room is None or self.sink is None or self.client_id is None:
            # Closing after a refused join: Tornado reads frames until the close
            # handshake ends. Nobody is there to answer; count them.
            metrics.frame_received("unparsed")
            metrics.inbound_dropped("join-refused")
            return
        received_at = time.perf_counter()
        verdict = self.inbound.decide(message, self.client_id, received_at)
        metrics.frame_received(verdict.received)
        if verdict.error is not None:
            metrics.frame_error(verdict.error.code)
            if verdict.close is not None:
                self._close(*verdict.close)
            else:
                self.sink.send(error_frame(verdict.error))
            return
        signal = verdict.signal
        assert signal is not None
        try:
            self.room.tell(Relay(self.client_id, self.sink, signal.type, signal.to, signal.data, received_at))
        except pykka.ActorDeadError:
            # The room failed after we joined; it closes its clients, but make sure.
            metrics.message(signal.type, "rejected", "room-failed")
            metrics.frame_relayed("rejected")
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
        if conn is None or conn.stream is None:
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
