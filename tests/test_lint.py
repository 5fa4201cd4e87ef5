"""Types and lint are part of the test command: mypy --strict on the service's packages,
ruff for lint and formatting on the whole tree (configured in setup.cfg and pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import scaled

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=scaled(300))


def test_mypy_strict_is_clean_on_the_service_packages() -> None:
    result = run("mypy", "actors", "transport", "metrics")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


@pytest.mark.parametrize("command", [("check",), ("format", "--check")], ids=["lint", "format"])
def test_ruff_is_clean(command: tuple[str, ...]) -> None:
    result = run("ruff", *command, ".")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
