"""Property-based fuzzing of a real server process: frames, REST bodies, query strings.

For every generated frame exactly one thing must happen: it is delivered to the peer,
or its sender gets an error frame (or, for frames the WebSocket layer itself must
refuse, the sender's connection is closed). Meanwhile a well-behaved pair in another
room keeps working, nothing crosses rooms, and the process never logs a traceback.

SIGNALING_FUZZ_EXAMPLES sets the number of examples per property (default 150).
"""

from __future__ import annotations

import json
import os
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
import websocket
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from loadtests import wire
from loadtests.wsclient import Peer
from tests.strategies import ids, json_values, mutated_frames, valid_frames
from tests.support import ServerProcess, scaled, server_process

EXAMPLES = int(os.environ.get("SIGNALING_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

text_frames = st.one_of(
    valid_frames.map(json.dumps),
    mutated_frames().map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 5000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(
        [
            "NaN",
            "1e999",
            '{"type":"offer","to":"peer","data":{"type":"offer","sdp":"x","v":1e999}}',
            "\ufeff{}",
            "\x00",
            "9" * 5000,
        ]
    ),
)
frames = st.one_of(text_frames, st.binary(max_size=100))


MARKER_PEER = "zz-marker"  # never produced by the id strategies' alphabet


class Pair:
    """Two members of one room (loadtests/wsclient.py, blocking), with markers to settle each frame."""

    def __init__(self, port: int, room: str) -> None:
        self.sender = Peer.join(port, room, "me", connect_timeout=scaled(10), frame_timeout=scaled(10))
        self.peer = Peer.join(port, room, "peer", connect_timeout=scaled(10), frame_timeout=scaled(10))
        assert self.sender.recv(scaled(10)) == {"type": "peer-joined", "data": {"clientId": "peer"}}
        self.n = 0

    def settle(self, frame: str | bytes) -> tuple[int, int]:
        """Send ``frame`` then two markers; returns (errors to sender, deliveries to peer).

        The sender's socket is ordered, so every error for ``frame`` comes before the
        error for the first marker (addressed to nobody); the room is ordered, so a
        delivery of ``frame`` reaches the peer before the second marker.
        """
        self.n += 1
        marker = f"m{self.n}"
        self.sender.send_raw(frame)
        self.sender.send("ice-candidate", MARKER_PEER, {"candidate": marker})
        self.sender.send("ice-candidate", "peer", {"candidate": marker})
        errors = 0
        while True:
            got = self.sender.recv(scaled(10))
            assert got["type"] == "error", got
            if MARKER_PEER in got["data"]["message"]:
                break
            errors += 1
        deliveries = 0
        while True:
            got = self.peer.recv(scaled(10))
            assert got["from"] == "me", got
            if got["type"] == "ice-candidate" and got["data"].get("candidate") == marker:
                break
            deliveries += 1
        return errors, deliveries

    def close(self) -> None:
        for peer in (self.sender, self.peer):
            peer.close()


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ServerProcess]:
    args = (
        "--rate-limit",
        "100000",
        "--rate-burst",
        "100000",
        "--reconnect-grace",
        "0",
        *wire.as_args(wire.LIFTED_PER_ADDRESS),
    )
    with server_process(*args) as proc:
        yield proc
        log = "".join(proc.log)
        assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
        assert proc.proc.poll() is None, "the server died"


@pytest.fixture
def healthy(fuzz_server: ServerProcess) -> Iterator[Pair]:
    # Per test: websocket-client answers the server's pings only while it reads, so a
    # pair left idle through a long test would rightly be dropped by keepalive.
    pair = Pair(fuzz_server.port, "healthy")
    yield pair
    pair.close()


def check_healthy(pair: Pair) -> None:
    """An offer/answer round trip; both sides read, so both answer the server's pings."""
    pair.sender.send("offer", "peer", {"type": "offer", "sdp": "ok"})
    got = pair.peer.recv(scaled(10))
    assert got == {"type": "offer", "from": "me", "data": {"type": "offer", "sdp": "ok"}}, got
    pair.peer.send("answer", "me", {"type": "answer", "sdp": "ok"})
    got = pair.sender.recv(scaled(10))
    assert got == {"type": "answer", "from": "peer", "data": {"type": "answer", "sdp": "ok"}}, got


def test_every_fuzzed_frame_is_delivered_or_answered_and_nothing_leaks(
    fuzz_server: ServerProcess, healthy: Pair
) -> None:
    fuzzed = Pair(fuzz_server.port, "fuzz")
    outcomes = {"error": 0, "delivered": 0}

    @FUZZ
    @given(frame=frames)
    # Both outcomes at least once, whatever this hypothesis version happens to draw.
    @example(frame=json.dumps({"type": "offer", "to": "peer", "data": {"type": "offer", "sdp": "v=0"}}))
    @example(frame="{")
    def one(frame: str | bytes) -> None:
        # A closed socket would raise here: bad frames must never cost the connection.
        errors, deliveries = fuzzed.settle(frame)
        assert errors + deliveries == 1, (frame[:200], errors, deliveries)
        outcomes["error" if errors else "delivered"] += 1
        check_healthy(healthy)

    try:
        one()
    finally:
        fuzzed.close()
    print(f"fuzzed frames: {outcomes}")
    assert outcomes["error"] > 0 and outcomes["delivered"] > 0


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({}, optional={"roomId": ids, "clientId": ids, "x": json_values}).map(
            lambda v: json.dumps(v).encode()
        ),
    )
)
def test_fuzzed_rest_join_bodies_get_json_answers_never_a_server_error(fuzz_server: ServerProcess, body: bytes) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{fuzz_server.port}/rooms/join", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=scaled(10)) as response:
            status, payload = response.status, json.loads(response.read())
            assert set(payload) == {"roomId", "clientId", "token", "iceServers"}
    except urllib.error.HTTPError as error:
        status, payload = error.code, json.loads(error.read())
        assert set(payload["error"]) == {"code", "message"}
    assert status in (200, 400, 409), (status, payload)


@FUZZ
@given(
    query=st.dictionaries(
        st.sampled_from(["roomId", "clientId", "ClientId", "token", "x"]),
        st.lists(ids | st.text(max_size=80), min_size=1, max_size=2),
        max_size=4,
    )
)
def test_fuzzed_query_strings_join_or_close_with_a_4xxx_code(fuzz_server: ServerProcess, query: dict) -> None:
    qs = urllib.parse.urlencode([(k, v) for k, values in query.items() for v in values])
    ws = websocket.create_connection(f"ws://127.0.0.1:{fuzz_server.port}/ws?{qs}", timeout=scaled(10))
    try:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0]
            assert 4400 <= code < 4500, (code, data)
        else:
            assert json.loads(data)["type"] == "joined"
    finally:
        ws.close()


def test_a_text_frame_that_is_not_utf8_fails_only_that_connection(fuzz_server: ServerProcess, healthy: Pair) -> None:
    bad = websocket.create_connection(wire.ws_url(fuzz_server.port, "utf8", "bad"), timeout=scaled(10))
    bad.recv()
    bad.send(b"\xff\xfe{}", opcode=websocket.ABNF.OPCODE_TEXT)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        bad.recv()  # RFC 6455 8.1: the endpoint must fail the connection
        bad.recv()
    check_healthy(healthy)
