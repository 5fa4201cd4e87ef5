"""REST handlers: room join, health, readiness, and JSON errors for everything else."""

from __future__ import annotations

import hmac
import time
from typing import Any

import orjson
from tornado.web import HTTPError, RequestHandler

from actors.errors import InvalidRequest, JoinRefused, RoomUnavailable, TooManyRequests, Unauthorized
from actors.ids import ClientId, RoomId, is_valid_id, new_client_id, new_room_id
from actors.messages import Reserve
from transport import openapi, turn
from transport.context import ServiceContext
from transport.schemas import parse_join_body
from transport.wire_codes import http_status

_HTTP_CODES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "body-too-large",
    429: "rate-limited",
    503: "unavailable",
}


class JsonHandler(RequestHandler):
    def initialize(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        origin = self.request.headers.get("Origin")
        allowed = self.ctx.settings.origins
        if origin and ("*" in allowed or origin.rstrip("/").lower() in allowed):
            self.set_header("Access-Control-Allow-Origin", origin)
            self.set_header("Vary", "Origin")

    def options(self, *args: Any) -> None:
        # CORS preflight for browsers calling the REST API from an allowed origin.
        self.set_header("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
        self.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.set_header("Access-Control-Max-Age", "600")
        self.set_status(204)

    def write_json(self, body: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.finish(orjson.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Never a traceback on the wire, whatever Tornado's debug setting.
        code = _HTTP_CODES.get(status_code, "error")
        self.finish(orjson.dumps({"error": {"code": code, "message": self._reason}}))

    def fail(self, error: JoinRefused) -> None:
        self.write_json({"error": error.to_wire()}, http_status(error))


class JoinHandler(JsonHandler):
    async def post(self, path_room_id: str | None = None) -> None:
        ctx = self.ctx
        ctx.check_proxy_headers(self.request)
        try:
            if not ctx.join_buckets.take(ctx.client_ip(self.request), time.monotonic()):
                raise TooManyRequests()
            if ctx.settings.token_mode:
                self._check_api_key()
            if path_room_id is not None and not is_valid_id(path_room_id):
                raise InvalidRequest("roomId must be 1-64 characters of A-Z a-z 0-9 _ -")
            body = parse_join_body(self.request.body, room_in_path=path_room_id is not None)
            room_id = RoomId(path_room_id or body.get("roomId") or new_room_id())
            client_id = ClientId(body.get("clientId") or new_client_id())
            exp = ctx.tokens.expiry()  # the stub is claimed only with the token made below
            if ctx.cluster is not None:  # the room may live on another backend
                await ctx.cluster.reserve(room_id, client_id, exp)
            else:
                await ctx.ask_hub(lambda reply: Reserve(room_id, client_id, reply, exp))
        except JoinRefused as refused:
            ctx.metrics.join("rest", refused.code)
            self.fail(refused)
            return
        except TimeoutError:
            ctx.metrics.join("rest", RoomUnavailable.code)
            self.fail(RoomUnavailable("room did not answer; retry"))
            return
        ctx.metrics.join("rest", "ok")
        self.write_json(
            {
                "roomId": room_id,
                "clientId": client_id,
                "token": ctx.tokens.mint(room_id, client_id, exp),
                # TURN credentials only here: a client that skips REST (open mode) gets none.
                "iceServers": turn.ice_servers(
                    ctx.settings.ice_server_list(), ctx.settings.turn_config, client_id, time.time()
                ),
            }
        )

    def _check_api_key(self) -> None:
        scheme, _, key = self.request.headers.get("Authorization", "").partition(" ")
        expected = self.ctx.settings.api_key
        if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(key.encode(), expected.encode()):
            raise Unauthorized("Authorization: Bearer <api key> required")


class HealthHandler(JsonHandler):
    def get(self) -> None:
        self.write_json({"status": "ok"})


class ReadyHandler(JsonHandler):
    def get(self) -> None:
        if self.ctx.draining:
            self.write_json({"status": "draining"}, 503)
        elif self.ctx.cluster is not None:
            # Still ready without Redis: local rooms keep working (docs/cluster.md).
            self.write_json({"status": "ready", "redis": "up" if self.ctx.cluster.up else "down"})
        else:
            self.write_json({"status": "ready"})


class OpenApiHandler(JsonHandler):
    def get(self) -> None:
        self.write_json(openapi.spec())


class NotFoundHandler(JsonHandler):
    def prepare(self) -> None:
        super().prepare()
        raise HTTPError(404, reason="no such endpoint")
