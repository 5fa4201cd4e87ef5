"""The server's garbage-collector settings (transport.server.tune_gc): young collections
come from a timer, not only from CPython's allocation count, which a steady relay keeps
near zero while the young generation fills (docs/performance.md, "Issue 12")."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support import scaled
from transport.server import GEN1_THRESHOLD, GEN2_THRESHOLD, collect_young, tune_gc


@pytest.fixture
def manual_gc() -> Iterator[list[int]]:
    """Automatic collections off (manual ones still run); the generations collected,
    in order; thresholds, freezing and the callback restored afterwards."""
    collected: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            collected.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.collect()  # counts start at zero
    gc.disable()
    gc.callbacks.append(record)
    try:
        yield collected
    finally:
        gc.callbacks.remove(record)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()


def test_collect_young_collects_generation_one_on_its_turn_and_generation_zero_otherwise(
    manual_gc: list[int],
) -> None:
    threshold1 = gc.get_threshold()[1]
    expected = []
    for _ in range(3 * (threshold1 + 1)):
        expected.append(1 if gc.get_count()[1] >= threshold1 else 0)
        collect_young()
    assert manual_gc == expected
    assert expected.count(1) == 3  # generation 1 every threshold1 + 1 calls, as CPython would
    assert 2 not in manual_gc  # full collections are left to CPython


async def test_the_server_collects_the_young_generation_on_a_timer(manual_gc: list[int]) -> None:
    three = asyncio.get_running_loop().create_future()

    def seen(phase: str, info: dict[str, Any]) -> None:
        # The pacer runs on this loop's thread, so the future can be set right here.
        if phase == "stop" and len(manual_gc) >= 3 and not three.done():
            three.set_result(None)

    gc.callbacks.append(seen)
    pacer = tune_gc()
    try:
        assert gc.get_threshold()[1:] == (GEN1_THRESHOLD, GEN2_THRESHOLD)  # full collections rare
        await asyncio.wait_for(three, scaled(5))  # automatic collections are off: the pacer's
        assert set(manual_gc) <= {0, 1}
    finally:
        pacer.stop()
        gc.callbacks.remove(seen)
