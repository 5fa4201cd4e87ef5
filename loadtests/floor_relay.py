"""The floor: a bare Tornado relay that speaks the service's wire protocol, and nothing more.

No actors, no validation, no metrics, no tokens, no logging per connection: rooms are
a dict of dicts on the IOLoop. ``bench.py`` runs it beside the service in the same
run, so every figure of the service comes with the cost of the same work done as
cheaply as plain Tornado allows. It is a measuring stick, never a server to deploy.

    python loadtests/floor_relay.py --port 0                # asyncio's loop, as a user would write it
    python loadtests/floor_relay.py --port 0 --loop uvloop  # the same relay on uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketClosedError, WebSocketHandler

Rooms = dict[str, dict[str, "RelaySocket"]]


def encode(frame: dict[str, Any]) -> str:
    # The same encoding as the service, so the frames on the wire are the same size.
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class JoinHandler(RequestHandler):
    def initialize(self, rooms: Rooms) -> None:
        self.rooms = rooms

    def post(self, path_room: str | None = None) -> None:
        body = json.loads(self.request.body) if self.request.body.strip() else {}
        room_id = path_room or body.get("roomId") or uuid.uuid4().hex
        client_id = body.get("clientId") or uuid.uuid4().hex
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"roomId": room_id, "clientId": client_id, "token": "", "iceServers": []}))


class RelaySocket(WebSocketHandler):
    def initialize(self, rooms: Rooms, nodelay: bool) -> None:
        self.rooms = rooms
        self.nodelay = nodelay
        self.room: dict[str, RelaySocket] | None = None
        self.client_id = ""

    def check_origin(self, origin: str) -> bool:
        return True  # a benchmark fixture on 127.0.0.1, never exposed

    def open(self) -> None:
        if self.nodelay:
            self.set_nodelay(True)
        room_id = self.get_query_argument("roomId")
        self.client_id = self.get_query_argument("clientId")
        room = self.room = self.rooms.setdefault(room_id, {})
        peers = list(room)
        room[self.client_id] = self
        self.write_message(
            encode({"type": "joined", "data": {"roomId": room_id, "clientId": self.client_id, "peers": peers}})
        )
        joined = encode({"type": "peer-joined", "data": {"clientId": self.client_id}})
        for peer in peers:
            room[peer].send(joined)

    def send(self, frame: str) -> None:
        try:
            self.write_message(frame)
        except WebSocketClosedError:
            pass

    def on_message(self, message: str | bytes) -> None:
        assert self.room is not None
        msg = json.loads(message)
        frame = encode({"type": msg["type"], "from": self.client_id, "data": msg["data"]})
        to = msg.get("to")
        if to is None:
            for client_id, peer in self.room.items():
                if client_id != self.client_id:
                    peer.send(frame)
            return
        target = self.room.get(to)
        if target is None:
            self.send(encode({"type": "error", "data": {"code": "unknown-peer", "message": "no such peer"}}))
        else:
            target.send(frame)

    def on_close(self) -> None:
        room = self.room
        if room is None or room.get(self.client_id) is not self:
            return
        del room[self.client_id]
        if not room:
            for room_id, r in list(self.rooms.items()):
                if r is room:
                    del self.rooms[room_id]
                    break
            return
        left = encode({"type": "peer-left", "data": {"clientId": self.client_id}})
        for peer in room.values():
            peer.send(left)


def make_app(ping_interval: float, nodelay: bool) -> Application:
    rooms: Rooms = {}
    return Application(
        [
            (r"/rooms/join", JoinHandler, {"rooms": rooms}),
            (r"/rooms/([^/]+)/join", JoinHandler, {"rooms": rooms}),
            (r"/ws", RelaySocket, {"rooms": rooms, "nodelay": nodelay}),
        ],
        websocket_ping_interval=ping_interval or None,
    )


async def serve(args: argparse.Namespace) -> None:
    server = HTTPServer(make_app(args.ping_interval, args.nodelay))
    sockets = bind_sockets(args.port, "127.0.0.1", backlog=args.backlog)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    logging.getLogger("floor").warning(
        "event loop: %s", "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
    )
    logging.getLogger("floor").warning("listening on http://127.0.0.1:%d (floor relay)", port)
    if args.ready_file:  # as the service's --ready-file: JSON, complete or absent (rename is atomic)
        partial = f"{args.ready_file}.partial"
        with open(partial, "w", encoding="utf-8") as f:
            json.dump({"port": port, "metrics_port": 0, "pid": os.getpid()}, f)
        os.replace(partial, args.ready_file)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--ping-interval", type=float, default=0.0, help="seconds between pings (0: off)")
    parser.add_argument("--ready-file", default="", help="write the bound port here as JSON once listening")
    parser.add_argument("--nodelay", action="store_true", help="set TCP_NODELAY on every WebSocket")
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="event loop (default asyncio: the floor as a user would write it)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
