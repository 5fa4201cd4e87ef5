"""Log set-up: one event per line, text or JSON, with room and client ids when known.

Handlers pass ids as ``extra={"room": ..., "client": ...}``. SDP and candidate text is
never logged: it carries the peers' IP addresses.
"""

from __future__ import annotations

import json
import logging
import sys


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s [%(threadName)s] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{key}={getattr(record, key)}" for key in ("room", "client") if hasattr(record, key))
        return f"{line} {ids}" if ids else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "message": record.getMessage(),
        }
        for key in ("room", "client"):
            if hasattr(record, key):
                event[key] = getattr(record, key)
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event)


def setup(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    if fmt == "json":
        import time

        formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Tornado logs every request at INFO; keep access logs for errors only.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
