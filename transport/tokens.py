"""Client tokens: HS256 JWTs with claims ``room``, ``sub`` (the clientId) and ``exp``.

An application backend can mint them with any JWT library and the shared secret.
In open mode the server still mints tokens (with a per-process random key) so a
REST join's answer has the same shape in both modes.

Minting is a few lines of hmac (8x cheaper than PyJWT's encode, and every REST join
mints), and so is verifying a token in exactly the form minted here; any other token
(one an application backend made with its own JWT library) is verified by PyJWT. The
tests check both paths against PyJWT.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import jwt
import orjson

from actors.errors import Forbidden, Unauthorized
from actors.ids import ClientId, RoomId

ALGORITHM = "HS256"


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _b64(b'{"alg":"HS256","typ":"JWT"}')
_HEADER_TEXT = _HEADER.decode()


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

    def verify(self, token: str, room_id: RoomId, client_id: ClientId) -> int:
        """The token's ``exp``. Raises Unauthorized for a bad, tampered or expired token,
        Forbidden for another room or client. (What a valid one allows: actors/seats.py.)"""
        claims = self._own_claims(token)
        if claims is None:
            try:
                claims = jwt.decode(
                    token, self._key, algorithms=[ALGORITHM], options={"require": ["exp", "room", "sub"]}
                )
            except jwt.ExpiredSignatureError:
                raise Unauthorized("token expired") from None
            except jwt.InvalidTokenError:
                raise Unauthorized("invalid token") from None
        if claims["room"] != room_id or claims["sub"] != client_id:
            raise Forbidden("token is for another room or client")
        return int(claims["exp"])

    def _own_claims(self, token: str) -> dict[str, Any] | None:
        """Claims of a token in exactly the form ``mint`` makes, checked without PyJWT
        (a tenth of its cost; every WebSocket with a token pays it); None for any other
        form, which PyJWT then decodes. Only our fixed HS256 header takes this path, so
        there is no algorithm to confuse."""
        header, _, rest = token.partition(".")
        if header != _HEADER_TEXT:
            return None
        payload, _, signature = rest.partition(".")
        expected = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(expected, signature):
            raise Unauthorized("invalid token")
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            raise Unauthorized("invalid token") from None
        if (
            not isinstance(claims, dict)
            or type(claims.get("exp")) is not int
            or not isinstance(claims.get("room"), str)
            or not isinstance(claims.get("sub"), str)
        ):
            raise Unauthorized("invalid token")
        if claims["exp"] <= time.time():  # as PyJWT: expired at exp
            raise Unauthorized("token expired")
        return claims
