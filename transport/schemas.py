"""Validation of everything a client sends: WebSocket frames, REST bodies, query strings.

The envelope of a frame is strict (unknown fields are refused); inside ``data`` only
the W3C fields are checked (``sdp``, ``candidate``, ``sdpMid``, ``sdpMLineIndex``,
``usernameFragment``) and anything else is the peers' business, forwarded untouched.
Every failure becomes one ``InvalidMessage``/``InvalidRequest`` with a short text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
    data: dict[str, Any]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return value


def loads(text: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, which would be forwarded as invalid JSON to browsers."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)


def parse_signal(text: str) -> Signal:
    """Decode and validate one text frame. Raises InvalidJson or InvalidMessage."""
    try:
        raw = loads(text)
    except ValueError:
        raise InvalidJson() from None
    except RecursionError:
        raise InvalidJson("frame is nested too deeply") from None
    if not isinstance(raw, dict):
        raise InvalidMessage("frame must be a JSON object")
    try:
        envelope = _ENVELOPE.load(raw)
    except ValidationError as exc:
        raise InvalidMessage(describe(exc.messages)) from None
    try:
        _DATA[envelope["type"]].load(envelope["data"])
    except ValidationError as exc:
        raise InvalidMessage(describe({"data": exc.messages})) from None
    return Signal(envelope["type"], envelope.get("to"), envelope.get("from_"), raw["data"])


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
    except (ValueError, RecursionError):
        raise InvalidRequest("body is not valid JSON") from None
    if not isinstance(raw, dict):
        raise InvalidRequest("body must be a JSON object")
    try:
        return (_ROOM_JOIN if room_in_path else _JOIN).load(raw)
    except ValidationError as exc:
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
