"""REST endpoints against a real server: join, health, readiness, JSON errors."""

from __future__ import annotations

import pytest

from tests.support import ServerFactory, connect, fetch, http, join
from transport.server import Server


async def test_join_with_no_body_makes_up_both_ids_and_returns_the_contract_fields(make_server: ServerFactory) -> None:
    server = await make_server(ice_servers='[{"urls": "stun:stun.example.test:3478"}]')
    status, body = await http(server, "POST", "/rooms/join")
    assert status == 200
    assert set(body) == {"roomId", "clientId", "token", "iceServers"}
    assert body["iceServers"] == [{"urls": "stun:stun.example.test:3478"}]
    assert len(body["roomId"]) >= 16  # the room id is the capability in open mode


async def test_join_by_path_and_by_body_reserve_the_client_id_until_its_socket_arrives(server: Server) -> None:
    status, reserved = await http(server, "POST", "/rooms/r1/join", {"clientId": "a"})
    assert (status, reserved["roomId"], reserved["clientId"]) == (200, "r1", "a")
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r1", "clientId": "a"})
    assert status == 409 and body == {
        "error": {"code": "client-id-taken", "message": "that clientId is already in the room"}
    }
    # The seat is the token holder's: not even open mode lets another socket take it.
    squatter = await connect(server, "r1", "a")
    code, reason = await squatter.closed()
    assert code == 4401 and "reserved" in reason
    client, _ = await join(server, "r1", "a", token=reserved["token"])
    client.close()


async def test_join_answers_409_room_full(make_server: ServerFactory) -> None:
    server = await make_server(max_members=1)
    assert (await http(server, "POST", "/rooms/r/join", {"clientId": "a"}))[0] == 200
    status, body = await http(server, "POST", "/rooms/r/join", {"clientId": "b"})
    assert status == 409 and body["error"]["code"] == "room-full"


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/rooms/join", b"{"),
        ("/rooms/join", b"[]"),
        ("/rooms/join", b'{"roomId": "has space"}'),
        ("/rooms/join", b'{"roomId": 7}'),
        ("/rooms/join", b'{"clientId": ""}'),
        ("/rooms/join", b'{"roomId": "r", "extra": true}'),
        ("/rooms/r/join", b'{"roomId": "r"}'),
        ("/rooms/" + "x" * 65 + "/join", b"{}"),
        ("/rooms/join", b'{"roomId": "\xff"}'),
    ],
    ids=[
        "bad-json",
        "not-object",
        "bad-room",
        "room-not-string",
        "empty-client",
        "unknown-field",
        "room-in-body-and-path",
        "long-path-room",
        "invalid-utf8",
    ],
)
async def test_bad_join_bodies_get_400_with_a_json_error(path: str, raw: bytes, server: Server) -> None:
    status, body = await http(server, "POST", path, raw=raw)
    assert status == 400
    assert body["error"]["code"] == "invalid-request" and body["error"]["message"]


async def test_health_readiness_and_unknown_routes_answer_json(server: Server) -> None:
    assert await http(server, "GET", "/healthz") == (200, {"status": "ok"})
    assert await http(server, "GET", "/readyz") == (200, {"status": "ready"})
    assert (await http(server, "GET", "/nope"))[1]["error"]["code"] == "not-found"
    assert (await http(server, "GET", "/rooms/join"))[1]["error"]["code"] == "method-not-allowed"


async def test_metrics_are_served_on_their_own_port_and_not_on_the_public_one(server: Server) -> None:
    assert (await http(server, "GET", "/metrics"))[0] == 404
    status, text = await http(server, "GET", "/metrics", port=server.metrics_port)
    assert status == 200 and "signaling_connected_clients" in text and "process_cpu_seconds_total" in text


async def test_cors_preflight_is_answered_only_for_allowed_origins(make_server: ServerFactory) -> None:
    server = await make_server(allowed_origins="https://app.example.test")
    ok = await fetch(server, "OPTIONS", "/rooms/join", Origin="https://app.example.test")
    assert ok.code == 204 and ok.headers["Access-Control-Allow-Origin"] == "https://app.example.test"
    other = await fetch(server, "OPTIONS", "/rooms/join", Origin="https://evil.example.test")
    assert "Access-Control-Allow-Origin" not in other.headers
    joined = await fetch(server, "POST", "/rooms/join", Origin="https://app.example.test")
    assert joined.code == 200 and joined.headers["Access-Control-Allow-Origin"] == "https://app.example.test"
