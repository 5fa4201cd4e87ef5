"""Client tokens: HS256 JWTs with claims ``room``, ``sub`` (the clientId) and ``exp``.

An application backend can mint them with any JWT library and the shared secret.
In open mode the server still mints tokens (with a per-process random key) so a
REST join's answer has the same shape in both modes.

Minting is a few lines of hmac (8x cheaper than PyJWT's encode, and every REST join
mints); verifying, where the subtleties are (algorithm confusion, expiry, required
claims), is PyJWT's. The tests decode minted tokens with PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import jwt
import orjson

from actors.errors import Forbidden, Unauthorized
from actors.ids import ClientId, RoomId

ALGORITHM = "HS256"


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')


class TokenIssuer:
    def __init__(self, secret: str, ttl: float) -> None:
        self._key = (secret or secrets.token_urlsafe(32)).encode()
        self._ttl = ttl

    def expiry(self) -> int:
        """``exp`` for a token minted now."""
        return int(time.time() + self._ttl)

    def mint(self, room_id: RoomId, client_id: ClientId, exp: int) -> str:
        claims = {"room": room_id, "sub": client_id, "exp": exp}
        signing_input = _HEADER + b"." + _b64(orjson.dumps(claims))
        signature = hmac.new(self._key, signing_input, hashlib.sha256).digest()
        return (signing_input + b"." + _b64(signature)).decode()

    def proof(self, token: str, room_id: RoomId, client_id: ClientId) -> int | None:
        """The token's ``exp`` if it is valid for this room and client, else None."""
        try:
            return self.verify(token, room_id, client_id)
        except (Unauthorized, Forbidden):
            return None

    def verify(self, token: str, room_id: RoomId, client_id: ClientId) -> int:
        """The token's ``exp``. Raises Unauthorized for a bad, tampered or expired token,
        Forbidden for another room or client."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[ALGORITHM], options={"require": ["exp", "room", "sub"]})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token expired") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid token") from None
        if claims["room"] != room_id or claims["sub"] != client_id:
            raise Forbidden("token is for another room or client")
        return int(claims["exp"])
