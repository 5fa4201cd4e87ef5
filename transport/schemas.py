"""Validation of everything a client sends: WebSocket frames, REST bodies, query strings.

The envelope of a frame is strict (unknown fields are refused); inside ``data`` only
the W3C fields are checked (``sdp``, ``candidate``, ``sdpMid``, ``sdpMLineIndex``,
``usernameFragment``) and anything else is the peers' business, forwarded untouched.
Every failure becomes one ``InvalidMessage``/``InvalidRequest`` with a short text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import orjson
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from actors.errors import InvalidJson, InvalidMessage, InvalidRequest
from actors.frozen import frozen
from actors.ids import ID_PATTERN, ClientId, RoomId

MAX_SDP_CHARS = 256 * 1024  # above any real SDP; the frame size cap usually bites first
MAX_CANDIDATE_CHARS = 1024  # a real candidate line is 60-200 characters
# Objects and arrays nested deeper than this (the frame object is level 1) are refused
# as invalid-message, whatever the JSON library's own limits are (orjson's differ by
# version: 3.8 parses any depth, newer ones stop at 1024, and it encodes at most 254).
MAX_NESTING = 64
NESTED_TOO_DEEPLY = f"frame is nested more than {MAX_NESTING} levels deep"
SIGNAL_TYPES = ("offer", "answer", "ice-candidate")

_id = validate.Regexp(ID_PATTERN, error="must be 1-64 characters of A-Z a-z 0-9 _ -")


class _IdField(fields.String):
    def __init__(self, **kwargs: Any) -> None:
        # The OpenAPI pattern is ECMA-262 (JSON Schema), which has no Python \Z anchor.
        metadata = {"pattern": "^[A-Za-z0-9_-]{1,64}$", **kwargs.pop("metadata", {})}
        super().__init__(validate=_id, metadata=metadata, **kwargs)


class EnvelopeSchema(Schema):
    class Meta:
        unknown = RAISE

    type = fields.String(required=True, validate=validate.OneOf(SIGNAL_TYPES))
    to = _IdField()
    from_ = _IdField(data_key="from")
    data = fields.Dict(required=True)


class SessionDescriptionSchema(Schema):
    class Meta:
        unknown = INCLUDE

    type = fields.String(required=True)
    sdp = fields.String(required=True, validate=validate.Length(max=MAX_SDP_CHARS))


class OfferSchema(SessionDescriptionSchema):
    type = fields.String(required=True, validate=validate.Equal("offer"))


class AnswerSchema(SessionDescriptionSchema):
    type = fields.String(required=True, validate=validate.OneOf(("answer", "pranswer")))


class IceCandidateSchema(Schema):
    class Meta:
        unknown = INCLUDE

    # An empty string is the end-of-candidates marker.
    candidate = fields.String(required=True, validate=validate.Length(max=MAX_CANDIDATE_CHARS))
    sdpMid = fields.String(allow_none=True, validate=validate.Length(max=64))
    sdpMLineIndex = fields.Integer(allow_none=True, strict=True, validate=validate.Range(0, 65535))
    usernameFragment = fields.String(allow_none=True, validate=validate.Length(max=256))


_ENVELOPE = EnvelopeSchema()
_DATA = {"offer": OfferSchema(), "answer": AnswerSchema(), "ice-candidate": IceCandidateSchema()}


@frozen
class Signal:
    type: str
    to: ClientId | None
    sender: ClientId | None  # the client's own claim of ``from``: checked by the caller
    data: bytes  # ``data`` re-encoded as JSON, forwarded as is


def loads(text: str | bytes) -> Any:
    """Strict JSON (orjson): NaN, Infinity, numbers out of double range and lone
    surrogates are refused, since they cannot be forwarded as JSON a browser parses."""
    return orjson.loads(text)


def parse_signal(text: str | bytes) -> Signal:
    """Decode and validate one text frame. Raises InvalidJson or InvalidMessage.

    Frames are checked by ``fast_check`` first: plain type and length tests that
    accept exactly what the marshmallow schemas accept (a property test holds them
    to that). Anything it does not accept goes through the schemas, which are the
    authority and word the error.
    """
    try:
        raw = loads(text)
    except orjson.JSONDecodeError:
        if text_nesting(text) > MAX_NESTING:
            raise InvalidMessage(NESTED_TOO_DEEPLY) from None
        raise InvalidJson() from None
    envelope = fast_check(raw)
    if envelope is None:
        if nesting(raw) > MAX_NESTING:
            raise InvalidMessage(NESTED_TOO_DEEPLY)
        envelope = schema_check(raw)
    data = raw["data"]
    # fast_check saw a flat envelope; only containers inside data can nest further.
    for value in data.values():
        if type(value) in _CONTAINERS:
            if nesting(data) > MAX_NESTING - 1:
                raise InvalidMessage(NESTED_TOO_DEEPLY)
            break
    return Signal(raw["type"], envelope[0], envelope[1], orjson.dumps(data))


_CONTAINERS = (dict, list)


def nesting(value: Any) -> int:
    """Levels of objects and arrays in a parsed value, counted up to MAX_NESTING + 1
    (iterative, so a huge depth costs neither recursion nor time)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) not in _CONTAINERS:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_NESTING:
            break
        stack.extend((child, depth + 1) for child in (item.values() if type(item) is dict else item))
    return deepest


def text_nesting(text: str | bytes) -> int:
    """Deepest bracket nesting outside strings, for text the parser refused: decides
    whether the refusal was the nesting limit (invalid-message) or bad JSON."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_NESTING:
                    break
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


def schema_check(raw: Any) -> tuple[ClientId | None, ClientId | None]:
    """The marshmallow schemas: (to, from) of a valid frame, else InvalidMessage."""
    if not isinstance(raw, dict):
        raise InvalidMessage("frame must be a JSON object")
    try:
        envelope = _ENVELOPE.load(raw)
    except ValidationError as exc:
        _forget_traceback(exc)
        raise InvalidMessage(describe(exc.messages)) from None
    try:
        _DATA[envelope["type"]].load(envelope["data"])
    except ValidationError as exc:
        _forget_traceback(exc)
        raise InvalidMessage(describe({"data": exc.messages})) from None
    return envelope.get("to"), envelope.get("from_")


def _forget_traceback(exc: ValidationError) -> None:
    """A ValidationError is held by a local of a marshmallow frame in its own traceback:
    a reference cycle, so every invalid frame or body would be garbage for the cyclic
    collector alone, which runs rarely here (issue 10; transport.server.tune_gc). The
    traceback is of no use once the error is turned into ours."""
    exc.__traceback__ = None


_ENVELOPE_KEYS = frozenset(("type", "to", "from", "data"))


def fast_check(raw: Any) -> tuple[ClientId | None, ClientId | None] | None:
    """(to, from) if the frame is certainly valid; None means "ask the schemas".

    The hot path: a relayed frame costs ~50 us in marshmallow and ~1 us here. Written
    out test by test, without helpers or generator expressions: every relayed frame
    runs it (an ICE candidate took 2.1 us with them, 1.0 us without).
    """
    if type(raw) is not dict or not raw.keys() <= _ENVELOPE_KEYS:
        return None
    data = raw.get("data")
    if type(data) is not dict:
        return None
    to = raw.get("to")
    if to is None:
        if "to" in raw:
            return None
    elif type(to) is not str or not ID_PATTERN.match(to):
        return None
    sender = raw.get("from")
    if sender is None:
        if "from" in raw:
            return None
    elif type(sender) is not str or not ID_PATTERN.match(sender):
        return None
    kind = raw.get("type")
    if kind == "ice-candidate":
        candidate = data.get("candidate")
        if type(candidate) is not str or len(candidate) > MAX_CANDIDATE_CHARS:
            return None
        mid = data.get("sdpMid")
        if mid is not None and (type(mid) is not str or len(mid) > 64):
            return None
        fragment = data.get("usernameFragment")
        if fragment is not None and (type(fragment) is not str or len(fragment) > 256):
            return None
        index = data.get("sdpMLineIndex")
        if index is not None and (type(index) is not int or not 0 <= index <= 65535):
            return None
    elif kind == "offer" or kind == "answer":
        description = data.get("type")  # an answer's may also be "pranswer"
        if description != kind and (kind == "offer" or description != "pranswer"):
            return None
        sdp = data.get("sdp")
        if type(sdp) is not str or len(sdp) > MAX_SDP_CHARS:
            return None
    else:
        return None
    return cast("tuple[ClientId | None, ClientId | None]", (to, sender))  # ids, checked above


class JoinBodySchema(Schema):
    class Meta:
        unknown = RAISE

    roomId = _IdField()
    clientId = _IdField()


class RoomJoinBodySchema(Schema):
    """Body of ``POST /rooms/{roomId}/join``: the room comes from the path."""

    class Meta:
        unknown = RAISE

    clientId = _IdField()


# -- what the REST API answers (used by transport/openapi.py; the tests check real answers against it) --


class IceServerSchema(Schema):
    """One RTCIceServer: an entry of --ice-servers as configured, or the minted TURN entry."""

    class Meta:
        unknown = INCLUDE

    urls = fields.Raw(
        required=True,
        metadata={
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "stun:, turn: or turns: URL(s)",
        },
    )
    username = fields.String(metadata={"description": "TURN: '<expiry unix time>:<clientId>'"})
    credential = fields.String(metadata={"description": "TURN: base64(HMAC-SHA1(secret, username))"})


class JoinAnswerSchema(Schema):
    roomId = _IdField(required=True)
    clientId = _IdField(required=True)
    token = fields.String(
        required=True, metadata={"description": "HS256 JWT (room, sub, exp); pass it as token= on the WebSocket"}
    )
    iceServers = fields.List(
        fields.Nested(IceServerSchema),
        required=True,
        metadata={"description": "for new RTCPeerConnection({iceServers}); ends with TURN credentials when configured"},
    )


class ErrorDetailSchema(Schema):
    code = fields.String(required=True, metadata={"description": "kebab-case, stable"})
    message = fields.String(required=True, metadata={"description": "human text"})


class ErrorBodySchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class StatusSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ok", "ready", "draining")))


_JOIN = JoinBodySchema()
_ROOM_JOIN = RoomJoinBodySchema()


def parse_join_body(body: bytes, room_in_path: bool) -> dict[str, str]:
    """Validate a REST join body (empty means ``{}``). Raises InvalidRequest."""
    if not body.strip():
        return {}
    try:
        raw = loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("body must be a JSON object")
    if fast_join_check(raw, room_in_path):
        return raw
    try:
        return join_schema_check(raw, room_in_path)
    except ValidationError as exc:
        _forget_traceback(exc)
        raise InvalidRequest(describe(exc.messages)) from None


_JOIN_KEYS = frozenset(("roomId", "clientId"))
_ROOM_JOIN_KEYS = frozenset(("clientId",))


def fast_join_check(raw: dict[str, Any], room_in_path: bool) -> bool:
    """True if the schema would accept ``raw`` as it is (False: ask the schema, which
    words the error). A join body is two ids at most: 0.7 us here, 5.4 us in the schema."""
    return raw.keys() <= (_ROOM_JOIN_KEYS if room_in_path else _JOIN_KEYS) and all(
        type(value) is str and ID_PATTERN.match(value) for value in raw.values()
    )


def join_schema_check(raw: dict[str, Any], room_in_path: bool) -> dict[str, str]:
    """The marshmallow schema alone (tests hold fast_join_check to it)."""
    loaded: dict[str, str] = (_ROOM_JOIN if room_in_path else _JOIN).load(raw)
    return loaded


def parse_ws_query(args: Mapping[str, list[bytes]]) -> tuple[RoomId, ClientId, str | None]:
    """roomId, clientId (``ClientId`` as the seed spells it) and optional token. Raises InvalidRequest."""

    def one(*names: str) -> str | None:
        values = [v for name in names for v in args.get(name, [])]
        if len(values) > 1:
            raise InvalidRequest(f"{names[0]} given more than once")
        if not values:
            return None
        try:
            return values[0].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{names[0]} is not UTF-8") from None

    room_id, client_id, token = one("roomId"), one("clientId", "ClientId"), one("token")
    for name, value in (("roomId", room_id), ("clientId", client_id)):
        if value is None:
            raise InvalidRequest(f"{name} is required")
        if not ID_PATTERN.fullmatch(value):
            raise InvalidRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return RoomId(room_id), ClientId(client_id), token  # type: ignore[arg-type]


def describe(messages: Any, prefix: str = "") -> str:
    """marshmallow's nested error dict as one short line: ``data.sdp: Missing data...``."""
    text = _describe(messages, prefix)
    return text if len(text) <= 200 else text[:197] + "..."


def _describe(messages: Any, prefix: str) -> str:
    if isinstance(messages, dict):
        parts = [_describe(v, f"{prefix}{'from' if k == 'from_' else k}.") for k, v in messages.items()]
        return "; ".join(parts)
    if isinstance(messages, list):
        return f"{prefix.rstrip('.')}: {' '.join(str(m) for m in messages)}"
    return f"{prefix.rstrip('.')}: {messages}"
