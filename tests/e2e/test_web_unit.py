"""The browser app's own unit tests (Vitest: the signaling client with a fake WebSocket,
the Call controller, components), run from the project's test command. The type check
(tsc) is part of `npm run build`, which the browser tests need anyway."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.e2e.browser import WEB, require_node_modules
from tests.support import scaled

pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess[str]:
    npm = require_node_modules()
    # CI=true: Vitest runs once, without watch mode or an interactive reporter.
    return subprocess.run(
        [npm, *args],
        check=False,
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=scaled(300),
        env={**os.environ, "CI": "true", "NO_COLOR": "1"},
    )


def test_the_apps_vitest_suite_passes() -> None:
    result = run("test", "--", "--run")
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "passed" in result.stdout
