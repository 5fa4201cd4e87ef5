"""The OpenAPI 3.1 description of the public HTTP API, served at ``GET /openapi.json``.

Bodies come from the marshmallow schemas in transport/schemas.py (apispec's
marshmallow plugin); what this module adds is which route answers which status and
error code. tests/transport/test_openapi.py holds it to the code: it validates the
document, walks make_app()'s routes, and checks real answers against it.
"""

from __future__ import annotations

import functools
from importlib import metadata
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from actors import errors
from transport import schemas
from transport.wire_codes import http_status

JSON = "application/json"

# Everything POST /rooms/join can refuse with (Forbidden is WebSocket-only: a token
# for another room or client).
JOIN_ERRORS: tuple[type[errors.JoinRefused], ...] = (
    errors.InvalidRequest,
    errors.Unauthorized,
    errors.ClientIdTaken,
    errors.RoomFull,
    errors.TooManyRequests,
    errors.ServerFull,
    errors.ShuttingDown,
    errors.RoomUnavailable,
    errors.RoomMoved,
)
# What the WebSocket endpoint answers, as JSON, instead of upgrading (ws.py's prepare()).
WS_ERRORS: dict[int, tuple[str, ...]] = {429: ("rate-limited",)}
# ...and what Tornado's WebSocketHandler answers itself, as one line of text.
WS_TEXT_ERRORS: dict[int, str] = {
    400: 'not an upgrade request (\'Can "Upgrade" only to "WebSocket".\')',
    403: "Origin not allowed ('Cross origin websockets not allowed')",
}
# Answered on any path by the JSON handlers themselves (transport/rest.py, write_error).
GENERIC_ERRORS: dict[str, tuple[int, str, str]] = {
    "NotFound": (404, "not-found", "no route has this path"),
    "MethodNotAllowed": (405, "method-not-allowed", "the path exists but not with this method"),
}


def _version() -> str:
    try:
        return metadata.version("actor-signaling")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _error_response(description: str, codes: list[str]) -> dict[str, Any]:
    # ErrorBody, with the codes this operation can answer at this status as an enum.
    narrowed = {"properties": {"error": {"properties": {"code": {"enum": sorted(set(codes))}}}}}
    return {
        "description": description,
        "content": {JSON: {"schema": {"allOf": [{"$ref": "#/components/schemas/ErrorBody"}, narrowed]}}},
    }


def _errors_by_status(refusals: tuple[type[errors.JoinRefused], ...]) -> dict[str, Any]:
    by_status: dict[int, list[type[errors.JoinRefused]]] = {}
    for error in refusals:
        by_status.setdefault(http_status(error), []).append(error)
    return {
        str(status): _error_response("; ".join(f"{e.code}: {e.message}" for e in group), [e.code for e in group])
        for status, group in sorted(by_status.items())
    }


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_UNEXPECTED = {
    "description": "an unexpected server error (500, code error): never a traceback",
    "content": {JSON: {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
}
_PREFLIGHT = {
    "summary": "CORS preflight",
    "description": "Answered for origins in --allowed-origins.",
    "responses": {"204": {"description": "allowed methods and headers"}},
}


def _join(body_schema: str, summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": "Creates the room if needed and reserves clientId until its WebSocket arrives "
            "(--stub-ttl). A missing id is made up by the server. In token mode "
            "(--secret) it needs Authorization: Bearer <api key>. A body over "
            "--max-frame-bytes is refused by the HTTP layer with a bare 400.",
            "security": [{}, {"apiKey": []}],
            "requestBody": {
                "required": False,
                "description": "optional; an empty body is {}",
                "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{body_schema}"}}},
            },
            "responses": {
                "200": _json("JoinAnswer", "the seat is reserved"),
                **_errors_by_status(JOIN_ERRORS),
                "default": _UNEXPECTED,
            },
        },
        "options": _PREFLIGHT,
    }


def _id_parameter(name: str, where: str, required: bool, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required,
        "description": description,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
    }


def _get(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "get": {"summary": summary, "responses": {**responses, "default": _UNEXPECTED}, **extra},
        "options": _PREFLIGHT,
    }


@functools.cache
def spec() -> dict[str, Any]:
    """The document, built once per process (it depends on no setting)."""
    api = APISpec(
        title="actor-signaling",
        version=_version(),
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={
            "description": "REST API of the WebRTC signaling service. The WebSocket protocol "
            "(frames, close codes) is in docs/protocol.md. Every error body is "
            '{"error": {"code", "message"}}; an unknown path answers 404 '
            "not-found and a known path with another method 405 method-not-allowed "
            "(components/responses)."
        },
    )
    api.components.schema("JoinBody", schema=schemas.JoinBodySchema)
    api.components.schema("RoomJoinBody", schema=schemas.RoomJoinBodySchema)
    api.components.schema("IceServer", schema=schemas.IceServerSchema)
    api.components.schema("JoinAnswer", schema=schemas.JoinAnswerSchema)
    api.components.schema("ErrorDetail", schema=schemas.ErrorDetailSchema)
    api.components.schema("ErrorBody", schema=schemas.ErrorBodySchema)
    api.components.schema("Status", schema=schemas.StatusSchema)
    api.components.security_scheme(
        "apiKey", {"type": "http", "scheme": "bearer", "description": "--api-key; required in token mode only"}
    )
    for name, (status, code, description) in GENERIC_ERRORS.items():
        api.components.response(name, _error_response(f"{status}: {description}", [code]))

    api.path("/rooms/join", operations=_join("JoinBody", "Join a room (room and client ids in the body)"))
    api.path(
        "/rooms/{roomId}/join",
        operations=_join("RoomJoinBody", "Join the room named in the path"),
        parameters=[_id_parameter("roomId", "path", True, "the room to join")],
    )
    api.path("/healthz", operations=_get("Liveness", {"200": _json("Status", "the process runs: ok")}))
    api.path(
        "/readyz",
        operations=_get(
            "Readiness",
            {"200": _json("Status", "accepting work: ready"), "503": _json("Status", "shutting down: draining")},
        ),
    )
    api.path(
        "/openapi.json",
        operations=_get(
            "This document", {"200": {"description": "OpenAPI 3.1", "content": {JSON: {"schema": {"type": "object"}}}}}
        ),
    )
    api.path(
        "/ws",
        operations={
            "get": {
                "summary": "Open the signaling WebSocket",
                "description": "An HTTP upgrade; the frames are described in docs/protocol.md. Browsers are "
                "checked by Origin (--allowed-origins).",
                "parameters": [
                    _id_parameter("roomId", "query", True, "the room"),
                    _id_parameter("clientId", "query", False, "this client (required; ClientId is accepted instead)"),
                    {
                        **_id_parameter("ClientId", "query", False, "alias of clientId, as the seed spells it"),
                        "deprecated": True,
                    },
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "from POST /rooms/join or the application backend; required in token mode",
                    },
                ],
                "responses": {
                    "101": {"description": "switched to the WebSocket protocol"},
                    **{
                        str(status): _error_response(f"refused before the upgrade: {', '.join(codes)}", list(codes))
                        for status, codes in WS_ERRORS.items()
                    },
                    **{
                        str(status): {"description": text, "content": {"text/html": {"schema": {"type": "string"}}}}
                        for status, text in WS_TEXT_ERRORS.items()
                    },
                    "default": _UNEXPECTED,
                },
            }
        },
    )
    return api.to_dict()
