"""Session-wide prerequisites of the browser tests: Chromium and the built app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.browser import require_built_app, require_chromium


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return require_chromium()


@pytest.fixture(scope="session")
def web_dist() -> Path:
    return require_built_app()


_ARTIFACTS = pytest.StashKey[list[str]]()


@pytest.fixture
def keep_artifact(request: pytest.FixtureRequest) -> Callable[[str, Path], None]:
    """Name a file a test keeps (a screenshot): listed at the end of the test output."""

    def keep(what: str, path: Path) -> None:
        request.config.stash.setdefault(_ARTIFACTS, []).append(f"{what}: {path}")

    return keep


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    kept = config.stash.get(_ARTIFACTS, [])
    if kept:
        terminalreporter.section("test artifacts")
        for line in kept:
            terminalreporter.line(line)
