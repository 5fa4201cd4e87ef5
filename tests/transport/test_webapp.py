"""The browser app served at / (transport/webapp.py) by a real server: files with the right
types and cache headers for a PWA, the API's JSON 404 elsewhere, and the web-root switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import ServerFactory, fetch, http
from transport import settings as settings_module
from transport.settings import Settings, SettingsError


def make_build(root: Path) -> Path:
    """A stand-in for web/dist: what vite and vite-plugin-pwa write."""
    (root / "assets").mkdir(parents=True)
    (root / "icons").mkdir()
    (root / "index.html").write_text("<!doctype html><title>app</title>")
    (root / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (root / "manifest.webmanifest").write_text('{"name": "app"}')
    (root / "assets" / "index-AbC123.js").write_text("console.log(1)")
    (root / "assets" / "index-AbC123.css").write_text("body{}")
    (root / "icons" / "icon-192.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


@pytest.mark.parametrize(
    ("path", "content_type", "cache_control"),
    [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/index.html", "text/html; charset=utf-8", "no-cache"),
        ("/sw.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/manifest.webmanifest", "application/manifest+json; charset=utf-8", "no-cache"),
        ("/icons/icon-192.png", "image/png", "no-cache"),
        ("/assets/index-AbC123.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable"),
        ("/assets/index-AbC123.css", "text/css; charset=utf-8", "public, max-age=31536000, immutable"),
    ],
)
async def test_app_files_are_served_with_their_type_and_a_cache_policy_that_suits_a_pwa(
    tmp_path: Path, path: str, content_type: str, cache_control: str, make_server: ServerFactory
) -> None:
    root = make_build(tmp_path / "dist")
    server = await make_server(web_root=str(root))
    response = await fetch(server, "GET", path)
    assert response.code == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == cache_control
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if path == "/sw.js":
        assert response.headers["Service-Worker-Allowed"] == "/"


async def test_paths_that_are_not_files_get_the_apis_json_404_and_the_api_still_answers(
    tmp_path: Path, make_server: ServerFactory
) -> None:
    root = make_build(tmp_path / "dist")
    server = await make_server(web_root=str(root))
    for path in ("/nope", "/assets/", "/assets", "/metrics", "/assets/missing.js"):
        response = await fetch(server, "GET", path)
        assert response.code == 404, path
        assert response.headers["Content-Type"] == "application/json", path
        assert response.headers["Cache-Control"] == "no-store", path
        assert b'"not-found"' in response.body, path
    (tmp_path / "secret").write_text("outside the web root")
    status, body = await http(server, "GET", "/../secret")
    assert status == 403 and body["error"]["code"] == "forbidden"
    assert await http(server, "GET", "/healthz") == (200, {"status": "ok"})
    assert (await http(server, "POST", "/rooms/r/join", {"clientId": "a"}))[0] == 200
    assert (await http(server, "GET", "/rooms/join"))[1]["error"]["code"] == "method-not-allowed"
    status, body = await http(server, "POST", "/index.html")
    assert status == 405 and body["error"]["code"] == "method-not-allowed"


async def test_an_empty_web_root_serves_no_app(tmp_path: Path, make_server: ServerFactory) -> None:
    server = await make_server(web_root="")
    status, body = await http(server, "GET", "/")
    assert status == 404 and body["error"]["code"] == "not-found"


def test_auto_serves_the_checkouts_build_only_if_it_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "BUILT_APP", tmp_path / "dist")
    assert Settings().web_root == "auto" and Settings().web_directory == ""
    make_build(tmp_path / "dist")
    assert Settings().web_directory == str(tmp_path / "dist")
    assert Settings(web_root="").web_directory == ""
    assert settings_module.load(["--web-root", ""]).web_directory == ""


def test_a_web_root_without_index_html_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="has no index.html"):
        Settings(web_root=str(tmp_path))
