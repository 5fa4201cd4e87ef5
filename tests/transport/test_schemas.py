"""Validation tables for frames, REST bodies and query strings: no sockets."""

from __future__ import annotations

import os

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from actors.errors import InvalidJson, InvalidMessage, InvalidRequest
from tests.strategies import ids, json_values, mutated_frames, valid_frames
from transport.schemas import (
    MAX_CANDIDATE_CHARS,
    MAX_NESTING,
    MAX_SDP_CHARS,
    fast_check,
    fast_join_check,
    join_schema_check,
    parse_join_body,
    parse_signal,
    parse_ws_query,
    schema_check,
    text_nesting,
)

VALID_FRAMES = [
    ('{"type":"offer","to":"b","data":{"type":"offer","sdp":"v=0"}}', ("offer", "b", None)),
    ('{"type":"answer","to":"a","from":"b","data":{"type":"answer","sdp":"v=0"}}', ("answer", "a", "b")),
    ('{"type":"answer","to":"a","data":{"type":"pranswer","sdp":"v=0"}}', ("answer", "a", None)),
    ('{"type":"ice-candidate","data":{"candidate":""}}', ("ice-candidate", None, None)),
    (
        '{"type":"ice-candidate","to":"b","data":{"candidate":"candidate:1 1 udp 1 127.0.0.1 5000 typ host",'
        '"sdpMid":null,"sdpMLineIndex":0,"usernameFragment":"abcd"}}',
        ("ice-candidate", "b", None),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID_FRAMES)
def test_valid_frames_parse_to_type_to_and_claimed_sender(text: str, expected: tuple) -> None:
    signal = parse_signal(text)
    assert (signal.type, signal.to, signal.sender) == expected


def test_data_is_forwarded_untouched_including_fields_the_server_does_not_know() -> None:
    signal = parse_signal('{"type":"offer","to":"b","data":{"type":"offer","sdp":"v=0","x":{"y":[1,"2"]}}}')
    assert orjson.loads(signal.data) == {"type": "offer", "sdp": "v=0", "x": {"y": [1, "2"]}}


@pytest.mark.parametrize(
    ("text", "error", "mentions"),
    [
        ("", InvalidJson, ""),
        ("{", InvalidJson, ""),
        ('{"type":"offer","data":{"type":"offer","sdp":"x","v":Infinity}}', InvalidJson, ""),
        ('{"type":"offer","data":{"type":"offer","sdp":"x","v":1e999}}', InvalidJson, ""),
        # Nesting past MAX_NESTING is invalid-message whether or not the JSON library
        # itself parses that deep (orjson 3.8 does, later versions stop at 1024).
        pytest.param("[" * 100_000 + "]" * 100_000, InvalidMessage, "nested", id="deep-list"),
        pytest.param("[" * 2_000 + "]" * 1_999, InvalidMessage, "nested", id="deep-and-broken"),
        pytest.param(
            '{"type":"offer","data":{"type":"offer","sdp":"x","d":' + "[" * 300 + "]" * 300 + "}}",
            InvalidMessage,
            "nested",
            id="deep-data",
        ),
        pytest.param(
            '{"type":"offer","data":{"type":"offer","sdp":"' + "[" * 300 + '"',
            InvalidJson,
            "",
            id="brackets-in-a-string-are-not-nesting",
        ),
        pytest.param('{"type":"ice-candidate","data":{"candidate":"\\udc00"}}', InvalidJson, "", id="lone-surrogate"),
        ('"offer"', InvalidMessage, "object"),
        ('{"data":{}}', InvalidMessage, "type"),
        ('{"type":"OFFER","data":{}}', InvalidMessage, "type"),
        ('{"type":"offer","data":[]}', InvalidMessage, "data"),
        ('{"type":"offer","data":{"sdp":"x"}}', InvalidMessage, "data.type"),
        ('{"type":"answer","data":{"type":"offer","sdp":"x"}}', InvalidMessage, "data.type"),
        ('{"type":"offer","data":{"type":"offer","sdp":null}}', InvalidMessage, "data.sdp"),
        ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":"0"}}', InvalidMessage, "sdpMLineIndex"),
        ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":true}}', InvalidMessage, "sdpMLineIndex"),
        ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":false}}', InvalidMessage, "sdpMLineIndex"),
        ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":-1}}', InvalidMessage, "sdpMLineIndex"),
        ('{"type":"ice-candidate","data":{"candidate":"c","sdpMLineIndex":1.5}}', InvalidMessage, "sdpMLineIndex"),
        ('{"type":"ice-candidate","data":{"candidate":7}}', InvalidMessage, "candidate"),
        ('{"type":"offer","to":"","data":{"type":"offer","sdp":"x"}}', InvalidMessage, "to"),
        ('{"type":"offer","to":null,"data":{"type":"offer","sdp":"x"}}', InvalidMessage, "to"),
        ('{"type":"offer","from":"a/b","data":{"type":"offer","sdp":"x"}}', InvalidMessage, "from"),
        ('{"type":"offer","data":{"type":"offer","sdp":"x"},"room":"other"}', InvalidMessage, "room"),
    ],
)
def test_invalid_frames_raise_one_error_with_a_short_message(text: str, error: type, mentions: str) -> None:
    with pytest.raises(error) as raised:
        parse_signal(text)
    assert mentions in raised.value.detail and len(raised.value.detail) <= 200


def test_error_messages_are_capped_even_for_many_unknown_fields() -> None:
    fields = ",".join(f'"field{n}":1' for n in range(200))
    with pytest.raises(InvalidMessage) as raised:
        parse_signal('{"type":"offer","data":{"type":"offer","sdp":"x"},' + fields + "}")
    assert len(raised.value.detail) <= 200


@pytest.mark.parametrize(
    ("body", "room_in_path", "expected"),
    [
        (b"", False, {}),
        (b"  ", False, {}),
        (b"{}", False, {}),
        (b'{"roomId":"r","clientId":"c"}', False, {"roomId": "r", "clientId": "c"}),
        (b'{"clientId":"c"}', True, {"clientId": "c"}),
    ],
)
def test_valid_join_bodies(body: bytes, room_in_path: bool, expected: dict) -> None:
    assert parse_join_body(body, room_in_path) == expected


@pytest.mark.parametrize(
    ("body", "room_in_path"),
    [
        (b"{", False),
        (b"null", False),
        (b'{"roomId":""}', False),
        (b'{"roomId":"' + b"a" * 65 + b'"}', False),
        (b'{"roomId":"r"}', True),
        (b'{"clientId":["c"]}', False),
        (b'{"x":1}', False),
    ],
)
def test_invalid_join_bodies(body: bytes, room_in_path: bool) -> None:
    with pytest.raises(InvalidRequest):
        parse_join_body(body, room_in_path)


def test_ws_query_accepts_both_spellings_of_clientId_and_an_optional_token() -> None:
    assert parse_ws_query({"roomId": [b"r"], "ClientId": [b"c"]}) == ("r", "c", None)
    assert parse_ws_query({"roomId": [b"r"], "clientId": [b"c"], "token": [b"t"]}) == ("r", "c", "t")


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"roomId": [b"r"]},
        {"roomId": [b"r"], "clientId": [b"c"], "ClientId": [b"d"]},
        {"roomId": [b"\xff"], "clientId": [b"c"]},
        {"roomId": [b"r r"], "clientId": [b"c"]},
        {"roomId": [b"r"], "clientId": [b"c"], "token": [b"a", b"b"]},
    ],
)
def test_invalid_ws_queries(query: dict) -> None:
    with pytest.raises(InvalidRequest):
        parse_ws_query(query)


@settings(max_examples=int(os.environ.get("SIGNALING_FUZZ_EXAMPLES", "150")) * 4, deadline=None)
@given(raw=valid_frames | mutated_frames() | json_values)
@example(raw={"type": "ice-candidate", "data": {"candidate": "c", "sdpMLineIndex": True}})
@example(raw={"type": "ice-candidate", "data": {"candidate": "c", "sdpMLineIndex": 65536}})
@example(raw={"type": "offer", "data": {"type": "offer", "sdp": "x"}, "to": "a\n"})
@example(raw={"type": "offer", "data": {"type": "pranswer", "sdp": "x"}})
@example(raw={"type": "answer", "data": {"type": "pranswer", "sdp": "x"}})
@example(raw={"type": "ice-candidate", "data": {"candidate": "c", "sdpMid": "m" * 64}})
@example(raw={"type": "ice-candidate", "data": {"candidate": "c", "sdpMid": "m" * 65}})
@example(raw={"type": "ice-candidate", "data": {"candidate": "c", "usernameFragment": "u" * 257}})
@example(raw={"type": "ice-candidate", "data": {"candidate": "c" * (MAX_CANDIDATE_CHARS + 1)}})
@example(raw={"type": "answer", "data": {"type": "answer", "sdp": "s" * (MAX_SDP_CHARS + 1)}})
@example(raw={"type": "offer", "from": None, "data": {"type": "offer", "sdp": "x"}})
def test_the_fast_path_accepts_exactly_what_the_schemas_accept(raw: object) -> None:
    try:
        expected = schema_check(raw)
    except InvalidMessage:
        expected = None
    fast = fast_check(raw)
    assert fast == expected, (raw, fast, expected)


@settings(max_examples=int(os.environ.get("SIGNALING_FUZZ_EXAMPLES", "150")) * 2, deadline=None)
@given(
    raw=st.dictionaries(st.sampled_from(["roomId", "clientId", "x"]), ids | json_values, max_size=3),
    room_in_path=st.booleans(),
)
@example(raw={"roomId": "r", "clientId": "c"}, room_in_path=False)
@example(raw={"clientId": "c\n"}, room_in_path=True)
def test_the_join_body_fast_path_accepts_only_what_the_schema_accepts_unchanged(
    raw: dict[str, object], room_in_path: bool
) -> None:
    try:
        expected = join_schema_check(raw, room_in_path)
    except ValidationError:
        expected = None
    if fast_join_check(raw, room_in_path):
        assert expected == raw, raw
    else:
        assert expected is None, raw  # what the schema takes, the fast path takes too


def _nested_frame(levels: int) -> str:
    """A valid offer whose frame object plus data plus extra arrays make ``levels`` levels."""
    extra = levels - 2
    return '{"type":"offer","data":{"type":"offer","sdp":"x","d":' + "[" * extra + "]" * extra + "}}"


def test_nesting_up_to_the_limit_is_forwarded_and_one_more_level_is_refused() -> None:
    assert orjson.loads(parse_signal(_nested_frame(MAX_NESTING)).data)["d"] is not None
    with pytest.raises(InvalidMessage, match="nested"):
        parse_signal(_nested_frame(MAX_NESTING + 1))


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 1_500])
def test_too_deep_is_the_same_error_whether_the_parser_or_our_check_refuses_it(levels: int) -> None:
    # A trailing comma makes every orjson version refuse the text, so this takes the
    # parser-refused path; _nested_frame takes the parsed path. Both must agree.
    broken = _nested_frame(levels)[:-2] + ",}}"
    for text in (broken, _nested_frame(levels)):
        with pytest.raises(InvalidMessage, match="nested"):
            parse_signal(text)


def test_text_nesting_counts_brackets_outside_strings_only() -> None:
    assert text_nesting('{"a":[{"b":"[[[{{{\\"}]}') == 3
    assert text_nesting(b'[[["\\"]],[') == 3
