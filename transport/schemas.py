"""Validation of everything a client sends: WebSocket frames, REST bodies, query strings.

The envelope of a frame is strict (unknown fields are refused); inside ``data`` only
the W3C fields are checked (``sdp``, ``candidate``, ``sdpMid``, ``sdpMLineIndex``,
``usernameFragment``) and anything else is the peers' business, forwarded untouched.
Every failure becomes one ``InvalidMessage``/``InvalidRequest`` with a short text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate

from actors.errors import InvalidJson, InvalidMessage, InvalidRequest
from actors.ids import ID_PATTERN, ClientId, RoomId

MAX_SDP_CHARS = 256 * 1024  # above any real SDP; the frame size cap usually bites first
MAX_CANDIDATE_CHARS = 1024  # a real candidate line is 60-200 characters
SIGNAL_TYPES = ("offer", "answer", "ice-candidate")

_id = validate.Regexp(ID_PATTERN, error="must be 1-64 characters of A-Z a-z 0-9 _ -")


class _IdField(fields.String):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(validate=_id, **kwargs)


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


@dataclass(frozen=True, slots=True)
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
        raise InvalidJson() from None
    envelope = fast_check(raw)
    if envelope is None:
        envelope = schema_check(raw)
    try:
        data = orjson.dumps(raw["data"])
    except TypeError:  # orjson refuses to encode nesting deeper than 254 levels
        raise InvalidMessage("data is nested too deeply") from None
    return Signal(raw["type"], envelope[0], envelope[1], data)


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
_ABSENT = object()


def fast_check(raw: Any) -> tuple[ClientId | None, ClientId | None] | None:
    """(to, from) if the frame is certainly valid; None means "ask the schemas".

    The hot path: a relayed frame costs ~50 us in marshmallow and ~2 us here.
    """
    if type(raw) is not dict or not raw.keys() <= _ENVELOPE_KEYS:
        return None
    kind, data = raw.get("type"), raw.get("data")
    if type(data) is not dict:
        return None
    to, sender = raw.get("to", _ABSENT), raw.get("from", _ABSENT)
    for value in (to, sender):
        if value is not _ABSENT and (type(value) is not str or not ID_PATTERN.match(value)):
            return None
    if kind == "ice-candidate":
        ok = _short_str(data.get("candidate", _ABSENT), MAX_CANDIDATE_CHARS) and all(
            _optional_str(data.get(key), limit) for key, limit in (("sdpMid", 64), ("usernameFragment", 256))
        ) and _optional_index(data.get("sdpMLineIndex"))
    elif kind == "offer" or kind == "answer":
        description = data.get("type")
        ok = (description == "offer" if kind == "offer" else description in ("answer", "pranswer")) and _short_str(
            data.get("sdp", _ABSENT), MAX_SDP_CHARS)
    else:
        return None
    if not ok:
        return None
    return (None if to is _ABSENT else to), (None if sender is _ABSENT else sender)  # type: ignore[return-value]


def _short_str(value: Any, limit: int) -> bool:
    return type(value) is str and len(value) <= limit


def _optional_str(value: Any, limit: int) -> bool:
    return value is None or _short_str(value, limit)


def _optional_index(value: Any) -> bool:
    return value is None or (type(value) is int and 0 <= value <= 65535)


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
    try:
        return (_ROOM_JOIN if room_in_path else _JOIN).load(raw)
    except ValidationError as exc:
        _forget_traceback(exc)
        raise InvalidRequest(describe(exc.messages)) from None


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
