"""Typed ids and the one rule for what an id may contain."""

from __future__ import annotations

import re
import secrets
from typing import NewType

RoomId = NewType("RoomId", str)
ClientId = NewType("ClientId", str)

ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")  # \Z: also anchored under re.match


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def new_room_id() -> RoomId:
    # 72 random bits: in open mode the room id is the capability, so it must not be guessable.
    return RoomId(secrets.token_urlsafe(12))


def new_client_id() -> ClientId:
    return ClientId(secrets.token_hex(8))
