"""Serving the built browser app (web/dist) at ``/``: its files, with cache headers that
suit a PWA, and the API's JSON 404 for everything else.

- ``/`` is ``index.html``; a path that names a file under the web root is that file.
- Hashed build output (``/assets/*``) never changes under its name: cached for a year.
- Everything else, above all ``sw.js`` and ``index.html``, is revalidated on every load
  (``no-cache``), so a new release reaches browsers on their next visit; browsers also
  cap a service worker script's HTTP caching, but proxies do not.
- A path that is not a file gets the API's JSON ``not-found`` (not Tornado's HTML page),
  so unknown API paths look the same with or without the app.
"""

from __future__ import annotations

import json
import mimetypes
from pathlib import Path
from typing import Any

from tornado.web import HTTPError, StaticFileHandler

# Types that Python's mimetypes table may lack (it depends on the machine's mime.types).
_TYPES = {
    ".webmanifest": "application/manifest+json",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".map": "application/json",
}
_IMMUTABLE_PREFIX = "assets/"
_YEAR = 365 * 24 * 3600


class WebAppHandler(StaticFileHandler):
    def initialize(self, path: str, default_filename: str | None = "index.html") -> None:  # type: ignore[override]
        super().initialize(path, default_filename)

    def get_content_type(self) -> str:
        assert self.absolute_path is not None
        suffix = Path(self.absolute_path).suffix.lower()
        known = _TYPES.get(suffix) or mimetypes.guess_type(self.absolute_path)[0] or "application/octet-stream"
        return known + ("; charset=utf-8" if known.startswith("text/") or known.endswith("json") else "")

    def get_cache_time(self, path: str, modified: Any, mime_type: str) -> int:
        return _YEAR if path.startswith(_IMMUTABLE_PREFIX) else 0

    def set_extra_headers(self, path: str) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")
        if path.startswith(_IMMUTABLE_PREFIX):
            self.set_header("Cache-Control", f"public, max-age={_YEAR}, immutable")
        else:
            self.set_header("Cache-Control", "no-cache")
        if path == "sw.js":
            self.set_header("Service-Worker-Allowed", "/")

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        # A directory other than the root (e.g. /assets/) is not a page: 404, no redirect.
        if Path(absolute_path).is_dir() and Path(absolute_path) != Path(root):
            raise HTTPError(404, reason="no such endpoint")
        return super().validate_absolute_path(root, absolute_path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # The same JSON error body as the API's (transport/rest.py), never a traceback.
        codes = {404: "not-found", 405: "method-not-allowed", 403: "forbidden"}
        self.clear_header("Cache-Control")
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        message = "no such endpoint" if status_code == 404 else self._reason
        self.finish(json.dumps({"error": {"code": codes.get(status_code, "error"), "message": message}}))
