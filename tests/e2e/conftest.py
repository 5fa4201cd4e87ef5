"""Session-wide prerequisites of the browser tests: Chromium and the built app."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import require_built_app, require_chromium


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_chromium()


@pytest.fixture(scope="session")
def web_dist() -> Path:
    return require_built_app()
