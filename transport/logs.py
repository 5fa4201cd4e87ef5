"""Log set-up: one event per line, text or JSON, with room and client ids when known.

Handlers and actors pass ids as ``extra={"room": ..., "client": ...}``; the formatters
put them in every line that has them. SDP and candidate text is never logged: it
carries the peers' IP addresses. Lifecycle events (room opened/closed, peer
connected/disconnected) are INFO; per-message lines are DEBUG only, since at INFO a
busy server would write a line per relayed frame.

JSON lines (``--log-format json``) have the fields ``time`` (UTC, ISO 8601 with
milliseconds), ``level``, ``logger``, ``thread``, ``message``, then ``room`` and
``client`` when known and ``exc`` for a traceback, so a log shipper (Loki, Vector,
Fluent Bit) can index them without a grok pattern.

Lines below WARNING are written in batches (``BatchedStreamHandler``): at most
``FLUSH_DELAY`` after they were logged, at once for a WARNING or worse, and all of them
at exit.

Tokens never reach the log: they travel in the WebSocket URL's query string, so the
access log names the path only (``log_request``), and both formatters blank any
``token=`` value that another line (a library's, a traceback) might carry.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sys
import threading
import time
from types import TracebackType
from typing import Any, TextIO

from tornado.web import RequestHandler

# The ``extra`` keys the service uses for ids, in the order they are written.
ID_FIELDS = ("room", "client")

_TOKEN = re.compile(r"(token=)[^&\s\"'\\]+", re.IGNORECASE)
access_log = logging.getLogger("tornado.access")


def redact(text: str) -> str:
    """``...&token=SECRET`` -> ``...&token=[redacted]``; cheap when there is none."""
    return _TOKEN.sub(r"\1[redacted]", text) if "oken=" in text else text


def log_request(handler: RequestHandler) -> None:
    """Tornado's access log line (its ``log_function`` setting) with the path, not the
    URI: ``/ws?roomId=..&token=..`` would put the client's token in the log."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):  # INFO is off by default (setup): skip the arguments
        return
    request = handler.request
    access_log.log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        request.path,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._stamp = (-1, "")  # (second, its local time text): one strftime a second

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        stamp = self._stamp
        if stamp[0] != second:
            stamp = self._stamp = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return f"{stamp[1]},{int(record.msecs):03d}"  # as default_msec_format

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            line = super().format(record)  # a traceback: the stock layout
        else:
            # The same line as the format string above, without its general machinery.
            record.message = record.getMessage()
            line = f"{self.formatTime(record)} {record.levelname} [{record.threadName}] {record.name}: {record.message}"
        line = redact(line)
        ids = " ".join(f"{key}={getattr(record, key)}" for key in ID_FIELDS if getattr(record, key, None) is not None)
        return f"{line} {ids}" if ids else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``json.dumps`` escapes newlines, so tracebacks stay on it."""

    converter = staticmethod(time.gmtime)  # the trailing Z below promises UTC

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": redact(record.getMessage()),
        }
        for key in ID_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                event[key] = value
        if record.exc_info:
            event["exc"] = redact(self.formatException(record.exc_info))
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return json.dumps(event, ensure_ascii=False, default=str)


# How long an INFO or DEBUG line may wait in the buffer (seconds).
FLUSH_DELAY = 0.1


class BatchedStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that flushes below-WARNING lines at most FLUSH_DELAY later.

    StreamHandler flushes after every record: with a line-buffered stderr that is a
    write() per line, six per call setup (room opened and closed, two peers connected
    and disconnected), and writing them as they came measured ~5% of a setup's CPU
    (issue 12, docs/performance.md). Here the running loop flushes once per
    FLUSH_DELAY whatever came in between; a WARNING or worse flushes at once with
    every line before it, as does a line logged where no loop runs on the thread
    (start-up, other threads), and logging.shutdown() at exit. What a SIGKILL can lose
    is at most FLUSH_DELAY of INFO lines.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._flush_timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # StreamHandler.emit without its flush per record (handle() holds our lock).
        try:
            self.stream.write(self.format(record) + self.terminator)
            if record.levelno >= logging.WARNING or not self._flush_soon():
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def _flush_soon(self) -> bool:
        """Make sure the running loop flushes within FLUSH_DELAY; False without one."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._flush_timer is None or self._timer_loop is not loop:  # (a loop that ended never fires it)
            self._timer_loop = loop
            self._flush_timer = loop.call_later(FLUSH_DELAY, self._timed_flush)
        return True

    def _timed_flush(self) -> None:
        self._flush_timer = self._timer_loop = None
        self.flush()


def flush() -> None:
    """Write out every line the root logger's handlers hold."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def block_buffered(stream: TextIO) -> TextIO:
    """``stream``'s file, written through a 64 KB buffer instead of line by line (stderr
    writes each line as it comes); the stream itself when it has no file (a capture)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return stream
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(io.BufferedWriter(raw, 1 << 16), encoding=stream.encoding, errors="backslashreplace")


def setup(level: str, fmt: str) -> None:
    # The logging module's documented optimisations: every record would otherwise walk
    # the stack for a file name and line, and look up process names we never print.
    # A few lines per join add up (5% of the CPU of a call setup before this).
    logging._srcfile = None
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = BatchedStreamHandler(block_buffered(sys.stderr))
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tornado logs every request at INFO (a line per scrape of /metrics, too); keep
    # access logs for errors only.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    # Whatever else reaches stderr goes through the same formatter, so a JSON log stays
    # one valid object per line: Python warnings, and uncaught exceptions in the main
    # thread or another one.
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, tb)
        return
    logging.getLogger("signaling").critical("uncaught exception", exc_info=(kind, value, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("signaling").critical(
        "uncaught exception in thread %s", thread, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
