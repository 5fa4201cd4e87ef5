"""Short-lived TURN credentials in coturn's REST form (``use-auth-secret``).

The service and coturn share one secret (coturn's ``static-auth-secret``); nothing
else passes between them. For each REST join the service hands out::

    username   = "<expiry unix time>:<clientId>"
    credential = base64(HMAC-SHA1(secret, username))

coturn recomputes the HMAC from the username and refuses (401) a username whose
expiry has passed. It checks that only when a TURN session first authenticates
(its Allocate): later Refresh, CreatePermission and ChannelBind requests are checked
against the key cached for the session, so an allocation made in time can be
refreshed for as long as the call lasts. The TTL therefore bounds when a credential
can *start* an allocation (first gathering, an ICE restart, a new peer connection
to a peer who joins later), not how long a call may last. docs/operations.md says
how to pick it.

Pure functions, no I/O: the clock is passed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

# A TURN URI (RFC 7065): turn: or turns:, a host, optional port and ?transport=.
# Commas and whitespace cannot appear, so a comma-separated list splits cleanly.
_TURN_URL = re.compile(r"turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(\?transport=(udp|tcp))?")


@dataclass(frozen=True)
class TurnConfig:
    urls: tuple[str, ...]
    secret: str
    ttl: int  # seconds from the join until the credential can no longer start an allocation


def parse_urls(text: str) -> tuple[str, ...]:
    """A comma-separated list of turn:/turns: URLs. Raises ValueError naming the bad one."""
    urls = tuple(url.strip() for url in text.split(",") if url.strip())
    for url in urls:
        if not _TURN_URL.fullmatch(url):
            raise ValueError(f"{url!r} is not a turn: or turns: URL (turn:host[:port][?transport=udp|tcp])")
    return urls


def credential(secret: str, username: str) -> str:
    """coturn's password for ``username``: base64 of HMAC-SHA1 keyed with the shared secret."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def username(client_id: str, expiry: int) -> str:
    # The expiry comes first: coturn reads the digits before the first ':' as the
    # timestamp, and a clientId cannot contain ':'.
    return f"{expiry}:{client_id}"


def ice_server(config: TurnConfig, client_id: str, now: float) -> dict[str, Any]:
    """One RTCIceServer with credentials for ``client_id``, valid until ``now + ttl``."""
    name = username(client_id, int(now) + config.ttl)
    return {"urls": list(config.urls), "username": name, "credential": credential(config.secret, name)}


def ice_servers(
    static: list[dict[str, Any]], config: TurnConfig | None, client_id: str, now: float
) -> list[dict[str, Any]]:
    """The ``iceServers`` of a join answer: the configured list, then our TURN entry if any."""
    if config is None:
        return static
    return [*static, ice_server(config, client_id, now)]
