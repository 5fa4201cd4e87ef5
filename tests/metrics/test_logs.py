"""Logs as operators ship them: ``--log-format json`` from the real process, one valid
JSON event per stderr line, ids where known, never SDP or candidate text, and
per-message lines only at DEBUG."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from tests.metrics.tools import traffic
from tests.support import connect, http, join, scaled, server_process
from transport.logs import TEXT_FORMAT, JsonFormatter, TextFormatter

pytestmark = pytest.mark.slow

SECRETS = ("SECRET-SDP-MARKER", "SECRET-CANDIDATE-MARKER", "203.0.113.7", "198.51.100.9")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}


def events(log: list[str]) -> list[dict[str, Any]]:
    """Every stderr line as a JSON event; fails on the first line that is not one."""
    out = []
    for line in log:
        try:
            event = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(event, dict), line
        assert {"time", "level", "logger", "thread", "message"} <= event.keys(), line
        assert event["level"] in LEVELS, line
        assert event["time"].endswith("Z") and datetime.fromisoformat(event["time"]).tzinfo == UTC, line
        out.append(event)
    return out


async def call_with_secrets(server: Any, room: str, count: int = 1) -> None:
    """Two clients swap offer/answer/candidates whose payloads carry marker text and IPs."""
    a, _ = await join(server, room, "alice")
    b, _ = await join(server, room, "bob")
    await a.recv_type("peer-joined")
    for _ in range(count):
        a.signal("offer", to="bob", data={"type": "offer", "sdp": "v=0 SECRET-SDP-MARKER 203.0.113.7"})
        a.signal(
            "ice-candidate",
            to="bob",
            data={"candidate": "candidate:SECRET-CANDIDATE-MARKER 1 udp 1 198.51.100.9 9 typ host"},
        )
        b.signal("answer", to="alice", data={"type": "answer", "sdp": "v=0 SECRET-SDP-MARKER 203.0.113.7"})
        await b.recv_type("offer")
        await b.recv_type("ice-candidate")
        await a.recv_type("answer")
    a.close()
    await b.recv_type("peer-left")
    b.close()


async def stop(proc: Any) -> None:
    proc.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(proc.proc.wait, scaled(10)) == 0


@pytest.mark.async_timeout(40)
async def test_json_logs_are_one_event_per_line_with_ids_and_never_sdp_or_candidate_text() -> None:
    with server_process("--log-format", "json", "--log-level", "DEBUG") as proc:
        await call_with_secrets(proc, "jsonroom")
        await traffic(proc)  # refusals, errors, held frames: more kinds of lines
        await stop(proc)
    log = events(proc.log)
    everything = "".join(proc.log)
    for secret in SECRETS:
        assert secret not in everything
    by_message: dict[str, list[dict[str, Any]]] = {}
    for event in log:
        by_message.setdefault(event["message"].split(":")[0], []).append(event)
    assert any(e.get("room") == "jsonroom" and "client" not in e for e in by_message["room opened"])
    connected = [e for e in by_message["peer connected"] if e.get("room") == "jsonroom"]
    assert {e["client"] for e in connected} == {"alice", "bob"}
    assert all(e["level"] == "INFO" and e["logger"] == "actors.room" and e["thread"] for e in connected)
    relays = [e for e in log if e["message"].startswith("relay ") and e.get("room") == "jsonroom"]
    assert {(e["level"], e["client"]) for e in relays} == {("DEBUG", "alice"), ("DEBUG", "bob")}
    assert len(relays) == 3  # one DEBUG line per relayed message
    assert any(e["message"] == "stopped" for e in log)


@pytest.mark.async_timeout(40)
async def test_at_info_a_busy_call_logs_its_lifecycle_but_no_line_per_message() -> None:
    with server_process("--log-format", "json") as proc:
        await call_with_secrets(proc, "quietroom", count=10)  # 30 relayed messages
        await stop(proc)
    log = events(proc.log)
    room = [e for e in log if e.get("room") == "quietroom"]
    assert [e["message"] for e in room] == [
        "room opened",
        "peer connected",
        "peer connected",
        "peer disconnected",
        "peer disconnected",
        "room closed",
    ]
    assert all(e["level"] != "DEBUG" for e in log)
    assert len(log) < 15, log


def record(**extra: Any) -> logging.LogRecord:
    rec = logging.LogRecord("actors.room", logging.ERROR, __file__, 1, "room %s failed", ("r1",), None)
    rec.__dict__.update(extra)
    return rec


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")  # UTC+14
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_json_formatter_keeps_a_traceback_on_one_line_and_leaves_out_unknown_ids(far_from_utc: None) -> None:
    assert time.localtime().tm_gmtoff != 0
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        rec = record(room="r1", client=None, exc_info=sys.exc_info())
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == "room r1 failed" and event["room"] == "r1" and "client" not in event
    assert "ValueError: boom" in event["exc"] and event["level"] == "ERROR" and event["logger"] == "actors.room"
    # UTC whatever the machine's timezone: the Z is not decoration.
    stamp = datetime.fromisoformat(event["time"])
    assert abs(stamp.timestamp() - rec.created) < 0.001 + 1e-6


def test_the_text_formatter_appends_the_ids_it_knows() -> None:
    line = TextFormatter().format(record(room="r1", client="c1"))
    assert line.endswith("actors.room: room r1 failed room=r1 client=c1") and "[MainThread]" in line
    assert TextFormatter().format(record(room="r1")).endswith("room r1 failed room=r1")


def test_the_text_formatter_writes_the_stock_formatters_line_across_seconds() -> None:
    # Its fast path (no traceback) and its one-strftime-a-second clock must not change a line.
    stock = logging.Formatter(TEXT_FORMAT)
    ours = TextFormatter()
    for created in (1_700_000_000.998, 1_700_000_000.999, 1_700_000_001.0, 1_700_000_003.5, 1_700_000_002.25):
        rec = record()
        rec.created, rec.msecs = created, (created - int(created)) * 1000
        assert ours.format(rec) == stock.format(rec)


@pytest.mark.parametrize("fmt, mode", [("text", "open"), ("json", "token")])
@pytest.mark.async_timeout(40)
async def test_no_token_reaches_the_log_at_debug_not_even_in_tornado_access_lines(fmt: str, mode: str) -> None:
    secret = "s" * 32
    args = ["--log-format", fmt, "--log-level", "DEBUG"]
    headers: dict[str, str] = {}
    if mode == "token":
        args += ["--secret", secret, "--api-key", "k" * 20]
        headers = {"Authorization": "Bearer " + "k" * 20}
    with server_process(*args) as proc:
        status, body = await http(proc, "POST", "/rooms/join", {"clientId": "alice"}, **headers)
        assert status == 200
        token, room = body["token"], body["roomId"]
        alice, _ = await join(proc, room, "alice", token=token)
        # A refused upgrade with the token in its URL: Tornado logs an access line for it.
        with pytest.raises(HTTPClientError) as refused:
            await connect(proc, room, "alice", token, Origin="https://elsewhere.example")
        assert refused.value.code == 403
        # The same token again: replaces the first connection (4410), logged as a reconnect.
        again, _ = await join(proc, room, "alice", token=token)
        assert (await alice.closed())[0] == 4410
        # A tampered token and another client's token: refused or ignored, and logged.
        tampered = await connect(proc, room, "bob", token[:-4] + "AAAA")
        if mode == "token":
            assert (await tampered.closed())[0] == 4401
        else:
            await tampered.recv_type("joined")
            tampered.close()
        stolen = await connect(proc, room, "carol", token)
        if mode == "token":
            assert (await stolen.closed())[0] == 4403
        else:
            await stolen.recv_type("joined")
            stolen.close()
        again.close()
        await stop(proc)
    log = "".join(proc.log)
    if fmt == "json":
        events(proc.log)  # still one JSON event per line
    assert "403 GET /ws (127.0.0.1)" in log, log  # Tornado's access line, without the query
    assert "tornado.access" in log
    assert token not in log and token[:-4] not in log and "token=" not in log.replace("token=[redacted]", "")


def test_both_formatters_redact_a_token_in_a_message_or_a_traceback() -> None:
    try:
        raise RuntimeError("bad request GET /ws?roomId=r&token=eyJhbGciOi.abc.def&clientId=c")
    except RuntimeError:
        rec = logging.LogRecord(
            "tornado.application",
            logging.ERROR,
            __file__,
            1,
            "Uncaught exception GET /ws?roomId=r&token=%s (127.0.0.1)",
            ("SECRETTOKEN",),
            sys.exc_info(),
        )
    for formatter in (TextFormatter(), JsonFormatter()):
        line = formatter.format(rec)
        assert "SECRETTOKEN" not in line and "eyJhbGciOi" not in line
        assert "token=[redacted]" in line
