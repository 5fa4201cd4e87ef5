"""One frozen Settings object: defaults here, each overridable by env var and flag.

Every field ``name`` has the flag ``--name-with-dashes`` and the environment variable
``SIGNALING_NAME``; a flag wins over the environment. Bad values stop the start-up
with one line naming the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.room_state import RoomLimits
from transport import turn

# The browser app as built in this checkout (`npm run build --prefix web`), served by default.
BUILT_APP = Path(__file__).resolve().parents[1] / "web" / "dist"


class SettingsError(ValueError):
    pass


def _doc(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class Settings:
    host: str = field(default="127.0.0.1", metadata=_doc("address of the public HTTP/WebSocket listener"))
    port: int = field(default=8080, metadata=_doc("port of the public listener (0: any free port)"))
    metrics_host: str = field(default="127.0.0.1", metadata=_doc("address of the /metrics listener"))
    metrics_port: int = field(default=8081, metadata=_doc("port of the /metrics listener, never exposed by nginx"))
    secret: str = field(default="", metadata=_doc("HS256 key for client tokens; set it to require tokens (token mode)"))
    api_key: str = field(default="", metadata=_doc("bearer key for POST /rooms/join in token mode"))
    token_ttl: float = field(default=3600.0, metadata=_doc("seconds a token from POST /rooms/join stays valid"))
    ice_servers: str = field(default="[]", metadata=_doc("JSON list of RTCIceServer dicts handed to clients"))
    turn_urls: str = field(
        default="",
        metadata=_doc(
            "comma-separated turn:/turns: URLs of a coturn with use-auth-secret; "
            "REST join answers add them with fresh credentials"
        ),
    )
    turn_secret: str = field(
        default="", metadata=_doc("coturn's static-auth-secret, to mint TURN credentials (needs --turn-urls)")
    )
    turn_ttl: int = field(
        default=86400,
        metadata=_doc(
            "seconds a TURN credential can start an allocation; allocations outlive it (see docs/operations.md)"
        ),
    )
    web_root: str = field(
        default="auto",
        metadata=_doc(
            "directory of the browser app to serve at /; auto: this "
            "checkout's built app (web/dist) if built; empty: serve none"
        ),
    )
    allowed_origins: str = field(
        default="",
        metadata=_doc(
            "comma-separated browser origins allowed ('*': any); default: same origin only; clients without Origin "
            "are accepted"
        ),
    )
    max_frame_bytes: int = field(default=64 * 1024, metadata=_doc("largest accepted WebSocket frame"))
    max_members: int = field(default=16, metadata=_doc("members per room, connected plus REST stubs"))
    max_rooms: int = field(default=10_000, metadata=_doc("live rooms per process"))
    stub_ttl: float = field(default=30.0, metadata=_doc("seconds a REST join waits for its WebSocket"))
    max_held: int = field(default=64, metadata=_doc("frames held for a client whose WebSocket has not arrived"))
    max_held_bytes: int = field(default=128 * 1024, metadata=_doc("bytes of frames held for one such client"))
    reconnect_grace: float = field(
        default=10.0,
        metadata=_doc("seconds a client that dropped without a close handshake keeps its seat before peer-left"),
    )
    rate_limit: float = field(default=20.0, metadata=_doc("frames per second a connection may send, sustained"))
    rate_burst: int = field(
        default=100,
        metadata=_doc(
            "frames a connection may send in a burst (trickled ICE); "
            "this many refused frames in a row close it with 1008"
        ),
    )
    # Per-address limits are a backstop against one host exhausting the process, not a
    # user limit: behind a CGNAT, an office NAT or an untrusted proxy thousands of users
    # share one address (docs/security.md, "Per-address limits").
    max_connections_per_ip: int = field(default=10_000, metadata=_doc("open WebSockets per client IP"))
    join_rate_per_ip: float = field(default=50.0, metadata=_doc("REST joins per second per client IP, sustained"))
    join_burst_per_ip: int = field(default=500, metadata=_doc("REST joins per client IP in a burst"))
    trust_proxy: bool = field(
        default=False,
        metadata=_doc(
            "take the client IP from X-Real-IP (only behind a proxy "
            "that sets it, such as the shipped nginx config); "
            "without it, requests carrying X-Real-IP or "
            "X-Forwarded-For are logged once and counted"
        ),
    )
    max_outbound_bytes: int = field(
        default=1024 * 1024, metadata=_doc("unsent bytes queued per connection before it is closed as a slow reader")
    )
    ping_interval: float = field(default=20.0, metadata=_doc("seconds between WebSocket pings (0: off)"))
    ping_timeout: float = field(default=20.0, metadata=_doc("seconds to wait for a pong before dropping the peer"))
    drain_seconds: float = field(
        default=0.0,
        metadata=_doc(
            "seconds /readyz answers 503 on SIGTERM before the listener closes, so a load balancer stops routing here"
        ),
    )
    shutdown_timeout: float = field(default=5.0, metadata=_doc("seconds to wait for sockets to close on SIGTERM"))
    backlog: int = field(default=1024, metadata=_doc("listen backlog (the default 128 drops connection bursts)"))
    loop: str = field(
        default="auto",
        metadata=_doc(
            "event loop: asyncio, uvloop, or auto (uvloop where it is installed, "
            "as it is by default on Linux and macOS)"
        ),
    )
    redis: str = field(
        default="",
        metadata=_doc(
            "Redis URL (redis://host:6379/0) that switches cluster mode on: "
            "room leases and cross-backend relay (docs/cluster.md); needs --secret"
        ),
    )
    backend_id: str = field(
        default="",
        metadata=_doc(
            "this backend's name in the cluster, unique per process; default: hostname:port plus a random suffix"
        ),
    )
    lease_ttl: float = field(
        default=10.0,
        metadata=_doc(
            "seconds a room lease lives in Redis unless renewed "
            "(every third of it); a dead owner's rooms move after this"
        ),
    )
    ready_file: str = field(
        default="",
        metadata=_doc(
            "once listening, write the bound ports as JSON (port, "
            "metrics_port, pid) to this path, atomically; removed on "
            "SIGTERM. For launchers that pass --port 0"
        ),
    )
    log_level: str = field(default="INFO", metadata=_doc("DEBUG, INFO, WARNING or ERROR"))
    log_format: str = field(default="text", metadata=_doc("text or json"))

    def __post_init__(self) -> None:
        for name in ("port", "metrics_port"):
            if not 0 <= getattr(self, name) <= 65535:
                raise SettingsError(f"{name} must be 0-65535")
        for name in (
            "max_frame_bytes",
            "max_members",
            "max_rooms",
            "max_held",
            "max_outbound_bytes",
            "backlog",
            "max_held_bytes",
            "rate_burst",
            "max_connections_per_ip",
            "join_burst_per_ip",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        for name in ("token_ttl", "stub_ttl", "shutdown_timeout", "rate_limit", "join_rate_per_ip"):
            if getattr(self, name) <= 0:
                raise SettingsError(f"{name} must be positive")
        for name in ("ping_interval", "ping_timeout", "drain_seconds", "reconnect_grace"):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name} must not be negative")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError("log_level must be DEBUG, INFO, WARNING or ERROR")
        if self.log_format not in ("text", "json"):
            raise SettingsError("log_format must be text or json")
        if self.loop not in ("asyncio", "uvloop", "auto"):
            raise SettingsError("loop must be asyncio, uvloop or auto")
        if self.secret and len(self.secret) < 32:
            raise SettingsError("secret must be at least 32 characters (HS256 key)")
        if self.redis:
            if not self.redis.startswith(("redis://", "rediss://", "unix://")):
                raise SettingsError("redis must be a redis://, rediss:// or unix:// URL")
            if not self.secret:
                raise SettingsError(
                    "cluster mode (--redis) needs --secret, shared by every backend, so that a "
                    "token minted by one verifies on all"
                )
        if self.lease_ttl < 0.3:
            raise SettingsError("lease_ttl must be at least 0.3 seconds")
        if any(c.isspace() for c in self.backend_id):
            raise SettingsError("backend_id must not contain spaces")
        self.ice_server_list()  # validates
        self._check_turn()
        if self.web_root not in ("", "auto") and not os.path.isfile(os.path.join(self.web_root, "index.html")):
            raise SettingsError(f"web_root {self.web_root!r} has no index.html")

    @functools.cached_property
    def web_directory(self) -> str:
        """The directory served at / ("" for none), with ``auto`` resolved."""
        if self.web_root == "auto":
            return str(BUILT_APP) if (BUILT_APP / "index.html").is_file() else ""
        return self.web_root

    @property
    def token_mode(self) -> bool:
        return bool(self.secret)

    def ice_server_list(self) -> list[dict[str, Any]]:
        """--ice-servers, parsed once: every REST join answers it (never mutated)."""
        return self._ice_servers

    @functools.cached_property
    def _ice_servers(self) -> list[dict[str, Any]]:
        try:
            servers = json.loads(self.ice_servers)
        except ValueError as exc:
            raise SettingsError(f"ice_servers is not JSON: {exc}") from None
        if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
            raise SettingsError('ice_servers must be a JSON list of objects with "urls"')
        return servers

    def _check_turn(self) -> None:
        if bool(self.turn_urls.strip()) != bool(self.turn_secret):
            raise SettingsError("turn_urls and turn_secret must be set together (or neither)")
        if self.turn_ttl < 60:
            raise SettingsError("turn_ttl must be at least 60 seconds (ICE gathering and a reconnect need that)")
        try:
            turn.parse_urls(self.turn_urls)
        except ValueError as exc:
            raise SettingsError(f"turn_urls: {exc}") from None

    @functools.cached_property
    def turn_config(self) -> turn.TurnConfig | None:
        """What REST joins need to mint TURN credentials; None without a TURN secret."""
        if not self.turn_secret:
            return None
        return turn.TurnConfig(turn.parse_urls(self.turn_urls), self.turn_secret, self.turn_ttl)

    @functools.cached_property
    def origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip())

    def room_limits(self) -> RoomLimits:
        return RoomLimits(
            max_members=self.max_members,
            stub_ttl=self.stub_ttl,
            max_held=self.max_held,
            max_held_bytes=self.max_held_bytes,
            reconnect_grace=self.reconnect_grace,
        )


_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _convert(name: str, kind: type, raw: str) -> Any:
    if kind is bool:
        if raw.lower() not in _BOOLS:
            raise SettingsError(f"{name}={raw!r}: expected true or false")
        return _BOOLS[raw.lower()]
    try:
        return kind(raw)
    except ValueError:
        expected = {int: "an integer", float: "a number"}.get(kind, kind.__name__)
        raise SettingsError(f"{name}={raw!r}: expected {expected}") from None


def load(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags over ``SIGNALING_*`` env vars over defaults. Raises SettingsError."""
    environ = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="signaling-server",
        description="WebRTC signaling service. Every flag also reads SIGNALING_<NAME> from the environment.",
    )
    fields = dataclasses.fields(Settings)
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} (default: {f.default!r})"
        if isinstance(f.default, bool):
            parser.add_argument(flag, dest=f.name, default=None, action="store_const", const="true", help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for f in fields:
        kind = type(f.default)
        env_name = "SIGNALING_" + f.name.upper()
        raw = getattr(args, f.name)
        source = "--" + f.name.replace("_", "-")
        if raw is None and env_name in environ:
            raw, source = environ[env_name], env_name
        if raw is not None:
            values[f.name] = _convert(source, kind, raw)
    return Settings(**values)
