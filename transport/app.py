"""make_app(): the public routes and the metrics routes, and what each handler is given."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from tornado.web import Application, RequestHandler

from transport.context import ServiceContext
from transport.logs import log_request
from transport.rest import HealthHandler, JoinHandler, NotFoundHandler, OpenApiHandler, ReadyHandler
from transport.webapp import WebAppHandler
from transport.ws import SignalingSocket


def make_app(ctx: ServiceContext) -> Application:
    s = ctx.settings
    kwargs = {"ctx": ctx}
    routes: list[Any] = [
        (r"/rooms/join", JoinHandler, kwargs),
        (r"/rooms/([^/]+)/join", JoinHandler, kwargs),
        (r"/ws", SignalingSocket, kwargs),
        (r"/healthz", HealthHandler, kwargs),
        (r"/readyz", ReadyHandler, kwargs),
        (r"/openapi.json", OpenApiHandler, kwargs),  # transport/openapi.py
    ]
    if s.web_directory:
        # The browser app; same origin as /ws, so the default origin check passes.
        routes.append((r"/(.*)", WebAppHandler, {"path": s.web_directory}))
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=kwargs,
        # Tornado closes a frame over this with 1009 without reading it into memory;
        # frames between max_frame_bytes and this get an error frame and keep the socket.
        websocket_max_message_size=4 * s.max_frame_bytes,
        websocket_ping_interval=s.ping_interval or None,
        websocket_ping_timeout=s.ping_timeout or None,
        compress_response=False,
        log_function=log_request,  # the path only: a /ws URI carries the client's token
    )


class MetricsHandler(RequestHandler):
    def initialize(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def get(self) -> None:
        encoder, content_type = choose_encoder(self.request.headers.get("Accept", ""))
        self.set_header("Content-Type", content_type)
        self.finish(encoder(self.registry))


def make_metrics_app(registry: CollectorRegistry) -> Application:
    return Application([(r"/metrics", MetricsHandler, {"registry": registry})])
