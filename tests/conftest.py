"""Test plumbing: run ``async def`` tests on a fresh asyncio loop, and check for leaked actors.

No pytest plugin is needed for asyncio: each coroutine test runs under
``asyncio.run`` with a timeout scaled by SIGNALING_TEST_TIMEOUT_FACTOR.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from tests.support import scaled


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    func = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    marker = pyfuncitem.get_closest_marker("async_timeout")
    limit = scaled(marker.args[0] if marker else 30.0)
    asyncio.run(asyncio.wait_for(func(**kwargs), limit))
    return True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "async_timeout(seconds): time limit of an async test (before scaling)")


@pytest.fixture(autouse=True)
def no_leaked_actors() -> Iterator[None]:
    yield
    leaked: list[Any] = pykka.ActorRegistry.get_all()
    for ref in leaked:
        # Their loop is gone: mark them stopped so the next test starts clean.
        pykka.ActorRegistry.unregister(ref)
        ref.actor_stopped.set()
    assert not leaked, f"test left actors running: {leaked}"
