"""The WebSocket contract against a real server on 127.0.0.1 with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest

from loadtests import wire
from tests.support import Client, ServerFactory, connect, http, join, running_server, sample_data, scaled
from transport.server import READ_CHUNK_BYTES, Server

SECRET = "s" * 40


async def error_code(client: Client) -> str:
    frame = await client.recv_type("error")
    assert set(frame["data"]) == {"code", "message"} and frame["data"]["message"]
    return frame["data"]["code"]


async def assert_still_usable(sender: Client, receiver: Client) -> None:
    sender.signal("ice-candidate", to=receiver.client_id)
    frame = await receiver.recv_type("ice-candidate")
    assert frame["from"] == sender.client_id


async def test_presence_joined_peer_joined_and_peer_left(server: Server) -> None:
    a, peers_a = await join(server, "room1", "alice")
    b, peers_b = await join(server, "room1", "bob")
    assert (peers_a, peers_b) == ([], ["alice"])
    assert await a.recv() == {"type": "peer-joined", "data": {"clientId": "bob"}}
    b.close()
    assert await a.recv() == {"type": "peer-left", "data": {"clientId": "bob"}}
    a.close()


async def test_the_seed_spelling_ClientId_is_accepted(server: Server) -> None:
    conn = await connect_raw(server, wire.ws_url(server.port, "alpha123", "peerA", key="ClientId"))
    frame = json.loads(await conn.read_message())
    assert frame["data"]["clientId"] == "peerA"
    conn.close()


async def test_offer_answer_and_ice_are_forwarded_to_the_addressed_peer_with_from_stamped(server: Server) -> None:
    a, _ = await join(server, "r", "a")
    b, _ = await join(server, "r", "b")
    c, _ = await join(server, "r", "c")
    await a.recv_type("peer-joined")
    await a.recv_type("peer-joined")
    await b.recv_type("peer-joined")
    offer = {"type": "offer", "sdp": "v=0\r\n", "extra": {"app": [1, 2]}}
    a.send({"type": "offer", "to": "b", "from": "a", "data": offer})
    assert await b.recv() == {"type": "offer", "from": "a", "data": offer}  # extra fields untouched
    b.signal("answer", to="a")
    assert await a.recv() == {"type": "answer", "from": "b", "data": sample_data("answer")}
    b.signal("ice-candidate", to="a", data={"candidate": ""})  # end-of-candidates
    assert (await a.recv())["data"] == {"candidate": ""}
    # c saw none of it: the next thing c gets is a broadcast.
    a.signal("ice-candidate")
    assert (await c.recv())["from"] == "a"
    assert (await b.recv())["from"] == "a"
    for x in (a, b, c):
        x.close()


async def test_a_frame_that_spans_many_socket_reads_arrives_whole(server: Server) -> None:
    # Reads are READ_CHUNK_BYTES each (not Tornado's 64 KB, which it zero-fills per
    # read): a 40 KB offer takes several, and must reach its peer whole.
    assert server.http.read_chunk_size == READ_CHUNK_BYTES < 40_000
    a, _ = await join(server, "big", "a")
    b, _ = await join(server, "big", "b")
    await a.recv_type("peer-joined")
    offer = {"type": "offer", "sdp": "v=0\r\n" + "a=x-pad:" + "x" * 40_000 + "\r\n"}
    a.send({"type": "offer", "to": "b", "data": offer})
    assert await b.recv() == {"type": "offer", "from": "a", "data": offer}
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "invalid-json"),
        ('{"type": "offer", "to": "b", "data": {"type": "offer", "sdp": "x", "n": NaN}}', "invalid-json"),
        ("[1, 2]", "invalid-message"),
        ({"type": "bye", "to": "b", "data": {}}, "invalid-message"),
        ({"type": "offer", "to": "b"}, "invalid-message"),
        ({"type": "offer", "to": "b", "data": {"type": "answer", "sdp": "x"}}, "invalid-message"),
        ({"type": "offer", "to": "b", "data": {"type": "offer", "sdp": 5}}, "invalid-message"),
        ({"type": "ice-candidate", "to": "b", "data": {"sdpMid": "0"}}, "invalid-message"),
        ({"type": "ice-candidate", "to": "b", "data": {"candidate": "x" * 2000}}, "invalid-message"),
        ({"type": "offer", "to": "b", "data": {"type": "offer", "sdp": "x"}, "extra": 1}, "invalid-message"),
        ({"type": "offer", "to": "b c", "data": {"type": "offer", "sdp": "x"}}, "invalid-message"),
        ({"type": "offer", "to": "b", "from": "b", "data": {"type": "offer", "sdp": "x"}}, "from-mismatch"),
        ({"type": "offer", "to": "zed", "data": {"type": "offer", "sdp": "x"}}, "unknown-peer"),
        (b"\x00\x01binary", "binary-not-supported"),
        ("x" * (64 * 1024 + 1), "frame-too-large"),
        ('{"type": "ice-candidate", "to": "b", "data": {"candidate": "\\ud800"}}', "invalid-json"),
        (
            '{"type": "offer", "to": "b", "data": {"type": "offer", "sdp": "x", "deep": '
            + "[" * 300
            + "]" * 300
            + "}}",
            "invalid-message",
        ),
    ],
    ids=[
        "bad-json",
        "nan",
        "not-object",
        "bad-type",
        "no-data",
        "sdp-type-mismatch",
        "sdp-not-string",
        "no-candidate",
        "candidate-too-long",
        "unknown-envelope-field",
        "bad-to",
        "spoofed-from",
        "unknown-peer",
        "binary",
        "oversized",
        "lone-surrogate",
        "deep-data",
    ],
)
async def test_bad_frames_get_an_error_frame_and_the_connection_stays_usable(
    frame: object, code: str, server: Server
) -> None:
    a, _ = await join(server, "r", "a")
    b, _ = await join(server, "r", "b")
    await a.recv_type("peer-joined")
    a.send(frame)  # type: ignore[arg-type]
    assert await error_code(a) == code
    await assert_still_usable(a, b)
    assert server.metrics.registry.get_sample_value("signaling_connected_clients") == 2
    a.close()
    b.close()


async def test_a_frame_over_the_hard_cap_closes_with_1009_without_touching_the_room(make_server: ServerFactory) -> None:
    server = await make_server(max_frame_bytes=1024, reconnect_grace=0)
    a, _ = await join(server, "r", "a")
    b, _ = await join(server, "r", "b")
    a.send("x" * 5000)  # over 4x max_frame_bytes: Tornado refuses to buffer it
    code, _ = await a.closed()
    assert code == 1009
    assert await b.recv() == {"type": "peer-left", "data": {"clientId": "a"}}
    b.close()


@pytest.mark.parametrize(
    "query",
    [
        "roomId=r",
        "clientId=a",
        "roomId=r%20x&clientId=a",
        "roomId=r&clientId=" + "a" * 65,
        "roomId=r&clientId=a&clientId=b",
    ],
    ids=["no-client", "no-room", "bad-room", "long-client", "repeated"],
)
async def test_a_bad_query_string_closes_with_4400_and_a_reason(query: str, server: Server) -> None:
    conn = await connect_raw(server, f"ws://127.0.0.1:{server.port}/ws?{query}")
    assert await conn.read_message() is None
    assert conn.close_code == 4400 and conn.close_reason.startswith("invalid-request")


async def test_a_connected_client_id_cannot_be_taken_over_without_a_token(server: Server) -> None:
    a, _ = await join(server, "r", "a")
    intruder = await connect(server, "r", "a")
    assert await intruder.closed() == (4409, "client-id-taken: that clientId is already in the room")
    await assert_still_usable_alone(a)
    a.close()


async def test_a_full_room_refuses_the_next_websocket_with_4429(make_server: ServerFactory) -> None:
    server = await make_server(max_members=2)
    a, _ = await join(server, "r", "a")
    b, _ = await join(server, "r", "b")
    c = await connect(server, "r", "c")
    code, reason = await c.closed()
    assert code == 4429 and reason.startswith("room-full")
    a.close()
    b.close()


async def test_frames_for_a_rest_stub_are_held_and_delivered_in_order_when_its_socket_arrives(server: Server) -> None:
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r", "clientId": "late"})
    assert status == 200
    a, peers = await join(server, "r", "a")
    assert peers == []  # a stub is not a connected peer
    for n in range(5):
        a.signal("ice-candidate", to="late", data=sample_data("ice-candidate", n))
    a.signal("offer", to="late")
    await assert_still_usable_alone(a)  # a round trip through the room: the frames are held by now
    late, _ = await join(server, "r", "late", token=body["token"])
    received = [await late.recv() for _ in range(6)]
    assert [f["data"] for f in received[:5]] == [sample_data("ice-candidate", n) for n in range(5)]
    assert received[5]["type"] == "offer" and all(f["from"] == "a" for f in received)
    assert await a.recv() == {"type": "peer-joined", "data": {"clientId": "late"}}
    a.close()
    late.close()


async def test_every_message_in_100_concurrent_rooms_arrives_exactly_once_and_in_order(
    make_server: ServerFactory,
) -> None:
    rooms, per_sender = 100, 20
    server = await make_server(max_connections_per_ip=2 * rooms)
    pairs = []
    for r in range(rooms):
        a, _ = await join(server, f"room{r}", "a")
        b, _ = await join(server, f"room{r}", "b")
        await a.recv_type("peer-joined")
        pairs.append((a, b))
    for n in range(per_sender):
        for a, b in pairs:
            a.signal("ice-candidate", to="b", data=sample_data("ice-candidate", n))
            b.signal("ice-candidate", to="a", data=sample_data("ice-candidate", n))

    async def drain(client: Client, room: int) -> list[int]:
        got = []
        for _ in range(per_sender):
            frame = await client.recv(timeout=10)
            assert frame["type"] == "ice-candidate", (room, frame)
            got.append(int(frame["data"]["candidate"].split()[0].split(":")[1]))
        return got

    results = await asyncio.gather(*(drain(c, r) for r, pair in enumerate(pairs) for c in pair))
    assert all(got == list(range(per_sender)) for got in results)
    # Exactly once: nothing more is waiting for anyone; a fresh marker is the next frame.
    for a, _ in pairs:
        a.signal("offer", to="b")
    for _, b in pairs:
        assert (await b.recv())["type"] == "offer"
    delivered = server.metrics.registry.get_sample_value(
        "signaling_messages_total", {"type": "ice-candidate", "outcome": "delivered", "reason": ""}
    )
    assert delivered == rooms * per_sender * 2
    for a, b in pairs:
        a.close()
        b.close()


# -- token mode --


def mint(room: str, sub: str, exp_in: float = 60, secret: str = SECRET) -> str:
    return jwt.encode({"room": room, "sub": sub, "exp": int(time.time() + exp_in)}, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda: None, 4401),
        (lambda: "not-a-jwt", 4401),
        (lambda: mint("r", "a", exp_in=-10), 4401),
        (lambda: mint("r", "a", secret="t" * 40), 4401),
        (lambda: mint("r", "a")[:-4] + "AAAA", 4401),
        (lambda: mint("other", "a"), 4403),
        (lambda: mint("r", "b"), 4403),
    ],
    ids=["missing", "garbage", "expired", "wrong-key", "tampered", "other-room", "other-client"],
)
async def test_token_mode_refuses_bad_tokens_with_a_4xxx_close(
    make_token, code: int, make_server: ServerFactory
) -> None:  # type: ignore[no-untyped-def]
    server = await make_server(secret=SECRET, api_key="k" * 20)
    # Minted here, not at collection time: a long run must not expire them.
    client = await connect(server, "r", "a", make_token())
    closed_code, reason = await client.closed()
    assert closed_code == code and reason


async def test_token_mode_admits_a_token_minted_by_an_application_backend(make_server: ServerFactory) -> None:
    server = await make_server(secret=SECRET, api_key="k" * 20)
    a, peers = await join(server, "r", "a", token=mint("r", "a"))
    assert peers == []
    a.close()


async def test_token_mode_rest_join_needs_the_api_key_and_returns_a_working_token(make_server: ServerFactory) -> None:
    server = await make_server(secret=SECRET, api_key="k" * 20)
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r"})
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r"}, Authorization="Bearer wrong")
    assert status == 401
    status, body = await http(server, "POST", "/rooms/join", {"roomId": "r"}, Authorization="Bearer " + "k" * 20)
    assert status == 200
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert (claims["room"], claims["sub"]) == ("r", body["clientId"])
    client, _ = await join(server, "r", body["clientId"], token=body["token"])
    client.close()


async def test_open_mode_admits_a_stale_token_but_without_the_right_to_take_over(server: Server) -> None:
    a, _ = await join(server, "r", "a", token="from-a-previous-process")
    intruder = await connect(server, "r", "a", token="forged")
    assert (await intruder.closed())[0] == 4409  # a connected id is not taken over
    await assert_still_usable_alone(a)
    a.close()


# -- reconnects --


async def test_a_client_that_drops_and_returns_within_the_grace_gets_its_held_frames_without_churn(
    make_server: ServerFactory,
) -> None:
    server = await make_server(reconnect_grace=scaled(30))
    a, _ = await join(server, "r", "a")
    reader, writer = await silent_client(server, "r", "b")
    await a.recv_type("peer-joined")
    writer.transport.abort()  # TCP gone, no close frame: a flaky network
    await assert_still_usable_alone(a)
    a.signal("ice-candidate", to="b", data=sample_data("ice-candidate", 1))  # held for b
    await assert_still_usable_alone(a)  # the room has handled it
    b, peers = await join(server, "r", "b")
    assert peers == ["a"]
    assert (await b.recv_type("ice-candidate"))["data"] == sample_data("ice-candidate", 1)
    b.signal("answer", to="a")
    assert (await a.recv())["type"] == "answer"  # no peer-left / peer-joined in between
    sample = server.metrics.registry.get_sample_value
    assert sample("signaling_abnormal_disconnects_total") == 1
    assert sample("signaling_held_seats_total", {"outcome": "resumed"}) == 1
    a.close()
    b.close()


async def test_a_dropped_client_that_does_not_return_is_announced_as_left_after_the_grace(
    make_server: ServerFactory,
) -> None:
    server = await make_server(reconnect_grace=0.2)
    a, _ = await join(server, "r", "a")
    reader, writer = await silent_client(server, "r", "b")
    await a.recv_type("peer-joined")
    writer.transport.abort()
    assert await a.recv() == {"type": "peer-left", "data": {"clientId": "b"}}
    assert server.metrics.registry.get_sample_value("signaling_held_seats_total", {"outcome": "expired"}) == 1
    a.close()


async def test_a_client_with_a_valid_token_replaces_its_own_open_connection_with_4410(server: Server) -> None:
    _, token = await rest_join(server, "r", "b")
    a, _ = await join(server, "r", "a")
    old, _ = await join(server, "r", "b", token=token)
    await a.recv_type("peer-joined")
    new, peers = await join(server, "r", "b", token=token)
    assert peers == ["a"]
    code, reason = await old.closed()
    assert code == 4410 and reason.startswith("replaced")
    assert server.metrics.registry.get_sample_value("signaling_replaced_connections_total") == 1
    a.signal("offer", to="b")
    assert (await new.recv())["type"] == "offer"
    new.signal("answer", to="a")
    assert (await a.recv())["type"] == "answer"  # no peer-left / peer-joined for a in between
    a.close()
    new.close()


async def test_an_old_open_mode_token_cannot_kick_a_later_holder_of_the_same_client_id(server: Server) -> None:
    _, old_token = await rest_join(server, "r", "dave")
    first, _ = await join(server, "r", "dave", token=old_token)
    first.close()
    await first.closed()
    dave, _ = await join(server, "r", "dave")  # a new holder, without a token
    kicker = await connect(server, "r", "dave", old_token)
    assert (await kicker.closed())[0] == 4409
    await assert_still_usable_alone(dave)
    dave.close()


async def rest_join(server, room: str, client: str) -> tuple[dict, str]:  # type: ignore[no-untyped-def]
    status, body = await http(server, "POST", "/rooms/join", {"roomId": room, "clientId": client})
    assert status == 200
    return body, body["token"]


# -- keepalive and shutdown --


async def test_a_peer_that_stops_answering_pings_is_dropped_and_the_others_told(make_server: ServerFactory) -> None:
    server = await make_server(ping_interval=0.2, ping_timeout=0.2, reconnect_grace=0.1)
    a, _ = await join(server, "r", "a")
    reader, writer = await silent_client(server, "r", "mute")
    assert await a.recv(timeout=5) == {"type": "peer-joined", "data": {"clientId": "mute"}}
    # The mute client never reads or pongs: the server must drop it on its own, after
    # the ping timeout plus Tornado's 5 s wait for a close handshake.
    assert await a.recv(timeout=10) == {"type": "peer-left", "data": {"clientId": "mute"}}
    writer.close()
    a.close()


async def test_shutdown_closes_every_socket_with_1001_and_refuses_new_joins_while_draining() -> None:
    server_cm = running_server(drain_seconds=scaled(1))
    server = await server_cm.__aenter__()
    try:
        a, _ = await join(server, "r1", "a")
        b, _ = await join(server, "r2", "b")
        shutdown = asyncio.ensure_future(server_cm.__aexit__(None, None, None))
        status, body = await http(server, "GET", "/readyz")
        assert (status, body) == (503, {"status": "draining"})
        late = await connect(server, "r1", "late")
        assert (await late.closed())[0] == 1001
        assert (await a.closed())[0] == 1001
        assert (await b.closed())[0] == 1001
        await asyncio.wait_for(shutdown, scaled(10))
    finally:
        if not server.ctx.draining:
            await server_cm.__aexit__(None, None, None)


async def test_shutdown_returns_only_after_every_close_handshake() -> None:
    server_cm = running_server()
    server = await server_cm.__aenter__()
    a, _ = await join(server, "r1", "a")
    b, _ = await join(server, "r2", "b")
    await server_cm.__aexit__(None, None, None)
    assert server.ctx.open_sockets == 0
    assert server.metrics.registry.get_sample_value("signaling_connected_clients") == 0
    assert (await a.closed())[0] == 1001 and (await b.closed())[0] == 1001


# -- helpers --


async def connect_raw(server, url: str):  # type: ignore[no-untyped-def]
    from tornado.websocket import websocket_connect

    return await asyncio.wait_for(websocket_connect(url), scaled(5))


async def assert_still_usable_alone(client: Client) -> None:
    client.signal("offer", to="nobody")
    assert await error_code(client) == "unknown-peer"


async def silent_client(server, room: str, client: str):  # type: ignore[no-untyped-def]
    """A raw WebSocket handshake, then silence: no reads, so no pongs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"GET /ws?roomId={room}&clientId={client} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), scaled(5))
    assert b"101" in status
    return reader, writer


async def test_browser_origins_are_checked_and_clients_without_origin_are_accepted(make_server: ServerFactory) -> None:
    from tornado.httpclient import HTTPClientError

    server = await make_server(allowed_origins="https://app.example.test")
    ok, _ = await join_with_origin(server, "a", "https://app.example.test")
    with pytest.raises(HTTPClientError) as refused:
        await connect(server, "r", "b", Origin="https://evil.example.test")
    assert refused.value.code == 403
    native, _ = await join(server, "r", "c")  # no Origin header: aiortc, native apps
    ok.close()
    native.close()


async def join_with_origin(server, client: str, origin: str):  # type: ignore[no-untyped-def]
    c = await connect(server, "r", client, Origin=origin)
    return c, (await c.recv_type("joined"))["data"]["peers"]
