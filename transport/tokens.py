"""Client tokens: HS256 JWTs with claims ``room``, ``sub`` (the clientId) and ``exp``.

An application backend can mint them with any JWT library and the shared secret.
In open mode the server still mints tokens (with a per-process random key) so a
REST join's answer has the same shape in both modes.
"""

from __future__ import annotations

import secrets
import time

import jwt

from actors.errors import Forbidden, Unauthorized
from actors.ids import ClientId, RoomId

ALGORITHM = "HS256"


class TokenIssuer:
    def __init__(self, secret: str, ttl: float) -> None:
        self._key = secret or secrets.token_urlsafe(32)
        self._ttl = ttl

    def mint(self, room_id: RoomId, client_id: ClientId) -> str:
        claims = {"room": room_id, "sub": client_id, "exp": int(time.time() + self._ttl)}
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def valid(self, token: str, room_id: RoomId, client_id: ClientId) -> bool:
        try:
            self.verify(token, room_id, client_id)
        except (Unauthorized, Forbidden):
            return False
        return True

    def verify(self, token: str, room_id: RoomId, client_id: ClientId) -> None:
        """Raise Unauthorized for a bad, tampered or expired token, Forbidden for another room/client."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], options={"require": ["exp", "room", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        if claims["room"] != room_id or claims["sub"] != client_id:
            raise Forbidden("token is for another room or client")
