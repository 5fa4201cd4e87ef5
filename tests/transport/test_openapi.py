"""GET /openapi.json: a valid OpenAPI 3.1 document that covers every route and every answer.

The document is checked three ways: by openapi-spec-validator; against make_app()'s
own routing table (every route and method is described, nothing else is); and
against real answers of a real server, whose bodies must validate against the
response schema the document gives for that path, method and status.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate as validate_spec
from tornado.web import Application, RequestHandler, StaticFileHandler

from actors import errors
from tests.support import http, running_server
from transport.app import make_app
from transport.openapi import spec
from transport.rest import _HTTP_CODES
from transport.server import Server
from transport.wire_codes import http_status

API_KEY = "k" * 16
SECRET = "s" * 32


def test_the_document_is_valid_openapi_3_1() -> None:
    document = spec()
    validate_spec(document)
    assert document["openapi"] == "3.1.0"


async def test_the_document_is_served_at_openapi_json_on_the_public_port(server: Server) -> None:
    assert await http(server, "GET", "/openapi.json") == (200, spec())
    assert (await http(server, "GET", "/openapi.json", port=server.metrics_port))[0] == 404


def _template(regex: str) -> str:
    """A Tornado route regex as an OpenAPI path with anonymous parameters: /rooms/{}/join."""
    return regex.rstrip("$").replace("([^/]+)", "{}").replace("\\.", ".")


def _implemented(handler: type[RequestHandler]) -> set[str]:
    return {
        m.lower()
        for m in handler.SUPPORTED_METHODS
        if getattr(handler, m.lower()) is not getattr(RequestHandler, m.lower())
    }


def _routes(app: Application) -> dict[str, set[str]]:
    routes = {}
    for rule in app.wildcard_router.rules:
        handler = rule.target
        if isinstance(handler, type) and issubclass(handler, StaticFileHandler):
            continue  # the browser app's files, not the API
        routes[_template(rule.matcher.regex.pattern)] = _implemented(handler)  # type: ignore[attr-defined]
    return routes


async def test_every_route_of_make_app_and_each_of_its_methods_is_described_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<!doctype html>")  # so the static catch-all route is there too
    async with running_server(web_root=str(tmp_path)) as server:
        routes = _routes(make_app(server.ctx))
    described = {
        re.sub(r"\{[^}]+\}", "{}", path): {m for m in operations if m != "parameters"}
        for path, operations in spec()["paths"].items()
    }
    assert "/openapi.json" in routes and "/rooms/{}/join" in routes and "/ws" in routes
    assert described == routes


def _codes(response: dict[str, Any]) -> set[str]:
    schema = response["content"]["application/json"]["schema"]
    return set(schema["allOf"][1]["properties"]["error"]["properties"]["code"]["enum"])


@pytest.mark.parametrize("path", ["/rooms/join", "/rooms/{roomId}/join"])
def test_every_refusal_of_a_rest_join_is_in_the_document_with_its_status_and_code(path: str) -> None:
    responses = spec()["paths"][path]["post"]["responses"]
    # Every JoinRefused but Forbidden, which only the WebSocket answers (a token for
    # another room or client); REST joins check an API key (401) instead.
    refusals = [
        c
        for c in vars(errors).values()
        if isinstance(c, type)
        and issubclass(c, errors.JoinRefused)
        and c is not errors.JoinRefused
        and c is not errors.Forbidden
    ]
    assert refusals
    for error in refusals:
        assert error.code in _codes(responses[str(http_status(error))]), error
    assert "default" in responses  # a 500 is an ErrorBody too


def test_the_errors_every_json_route_can_answer_are_in_the_components() -> None:
    responses = spec()["components"]["responses"]
    # write_error answers these whatever the path; the others in _HTTP_CODES have no
    # handler that raises them (a refused join answers its own JoinRefused code).
    for status, name in ((404, "NotFound"), (405, "MethodNotAllowed")):
        assert _codes(responses[name]) == {_HTTP_CODES[status]}


def _response_schema(document: dict[str, Any], path: str, method: str, status: int) -> dict[str, Any]:
    if path not in document["paths"]:
        response = document["components"]["responses"]["NotFound"]
    elif method not in document["paths"][path]:
        response = document["components"]["responses"]["MethodNotAllowed"]
    else:
        responses = document["paths"][path][method]["responses"]
        response = responses.get(str(status)) or responses["default"]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def check_answer(path: str, method: str, status: int, body: Any) -> None:
    document = spec()
    # The schema's $refs point into the document's components: give it them at its root.
    schema = {**_response_schema(document, path, method, status), "components": document["components"]}
    OAS31Validator(schema).validate(body)


async def test_real_answers_validate_against_the_document() -> None:
    async with running_server(max_members=1, max_rooms=2) as server:
        answers = [
            ("/rooms/join", "post", *await http(server, "POST", "/rooms/join", {"roomId": "r", "clientId": "a"})),
            ("/rooms/{roomId}/join", "post", *await http(server, "POST", "/rooms/r/join", {"clientId": "a"})),
            ("/rooms/{roomId}/join", "post", *await http(server, "POST", "/rooms/r/join", {"clientId": "b"})),
            ("/rooms/{roomId}/join", "post", *await http(server, "POST", "/rooms/r2/join", {})),
            ("/rooms/{roomId}/join", "post", *await http(server, "POST", "/rooms/r3/join", {})),
            ("/rooms/join", "post", *await http(server, "POST", "/rooms/join", raw=b'{"roomId": 7}')),
            ("/healthz", "get", *await http(server, "GET", "/healthz")),
            ("/readyz", "get", *await http(server, "GET", "/readyz")),
            ("/openapi.json", "get", *await http(server, "GET", "/openapi.json")),
            ("/rooms/join", "get", *await http(server, "GET", "/rooms/join")),
            ("/nope", "get", *await http(server, "GET", "/nope")),
        ]
    statuses = [status for _path, _method, status, _body in answers]
    assert statuses == [200, 409, 409, 200, 503, 400, 200, 200, 200, 405, 404]
    for path, method, status, body in answers:
        check_answer(path, method, status, body)


async def test_token_mode_and_rate_limit_refusals_validate_against_the_document() -> None:
    async with running_server(secret=SECRET, api_key=API_KEY, join_burst_per_ip=2, join_rate_per_ip=0.01) as server:
        answers = [
            await http(server, "POST", "/rooms/join"),
            await http(server, "POST", "/rooms/join", Authorization=f"Bearer {API_KEY}"),
            await http(server, "POST", "/rooms/join", Authorization=f"Bearer {API_KEY}"),
        ]
    assert [status for status, _body in answers] == [401, 200, 429]
    for status, body in answers:
        check_answer("/rooms/join", "post", status, body)


def test_a_body_that_breaks_the_document_is_caught() -> None:
    # The check above would pass vacuously if the schemas accepted anything.
    with pytest.raises(Exception, match="enum|is not one of"):
        check_answer("/rooms/join", "post", 409, {"error": {"code": "room-is-closed", "message": "x"}})
    with pytest.raises(Exception, match="required"):
        check_answer("/rooms/join", "post", 200, {"roomId": "r", "clientId": "c", "token": "t"})
