"""Test plumbing: async tests and fixtures, servers as fixtures, and a check for leaked actors.

pytest-asyncio runs every ``async def`` test and fixture (``asyncio_mode = auto`` in
setup.cfg), each test on a fresh loop as ``asyncio.run`` would. Each async test has a
time limit scaled by SIGNALING_TEST_TIMEOUT_FACTOR: 30 s, or ``async_timeout(seconds)``;
pytest-timeout's limit in setup.cfg is the backstop for everything else.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pykka
import pytest

from actors import runtime
from tests.support import ServerFactory, running_server, scaled
from transport.server import Server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "async_timeout(seconds): time limit of an async test (before scaling)")


def _time_limited(test: Callable[..., Awaitable[Any]], limit: float) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(test)  # keeps the signature, so fixtures are still resolved by name
    async def limited(*args: Any, **kwargs: Any) -> Any:
        # wait_for cancels the test on time: its `async with`/finally blocks still run.
        return await asyncio.wait_for(test(*args, **kwargs), limit)

    return limited


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            marker = item.get_closest_marker("async_timeout")
            # Function.obj is the public attribute pytest (and pytest-asyncio) call the test through.
            item.obj = _time_limited(item.obj, scaled(marker.args[0] if marker else 30.0))


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    """``server = await make_server(max_members=2)``: the whole service in this process,
    on free ports, with those settings; every server started is shut down after the test."""
    async with AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Server:
            return await stack.enter_async_context(running_server(**overrides))

        yield start


@pytest.fixture
async def server(make_server: ServerFactory) -> Server:
    """The service with the test settings (tests.support.make_settings), shut down after the test."""
    return await make_server()


@pytest.fixture(autouse=True)
def no_leaked_actors() -> Iterator[None]:
    yield
    leaked: list[Any] = pykka.ActorRegistry.get_all() + runtime.live_actors()
    for ref in leaked:
        # Their loop is gone: mark them stopped so the next test starts clean.
        pykka.ActorRegistry.unregister(ref)
        runtime._live.pop(ref.actor_urn, None)
        ref.actor_stopped.set()
    assert not leaked, f"test left actors running: {leaked}"
