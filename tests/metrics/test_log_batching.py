"""BatchedStreamHandler: INFO lines out within FLUSH_DELAY, WARNING and worse at once.

A real file behind the real block-buffered stream ``setup()`` uses; the loop's timer is
awaited through ``FLUSH_DELAY = 0`` (the next loop pass), never slept for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from transport import logs


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[tuple[logging.Logger, logs.BatchedStreamHandler, Path]]:
    path = tmp_path / "log"
    stream = open(path, "w")  # closed below, with the handler
    handler = logs.BatchedStreamHandler(logs.block_buffered(stream))
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.log_batching")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield logger, handler, path
    logger.removeHandler(handler)
    handler.close()
    stream.close()


async def next_passes() -> None:
    for _ in range(3):  # the timer's pass, and one more
        await asyncio.sleep(0)


async def test_info_lines_wait_for_the_loops_flush_and_then_all_go_out_in_order(
    log_file: tuple[logging.Logger, logs.BatchedStreamHandler, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, _, path = log_file
    monkeypatch.setattr(logs, "FLUSH_DELAY", 0.0)
    logger.info("room opened")
    logger.info("peer connected")
    assert path.read_text() == ""  # not a write per line
    await next_passes()
    assert path.read_text() == "INFO room opened\nINFO peer connected\n"
    logger.info("peer disconnected")  # and the next lines get a flush of their own
    await next_passes()
    assert path.read_text().endswith("INFO peer connected\nINFO peer disconnected\n")


async def test_a_warning_goes_out_at_once_with_every_line_before_it(
    log_file: tuple[logging.Logger, logs.BatchedStreamHandler, Path],
) -> None:
    logger, _, path = log_file
    logger.info("peer connected")
    logger.warning("room failed")
    assert path.read_text() == "INFO peer connected\nWARNING room failed\n"


def test_without_a_running_loop_each_line_goes_out_at_once(
    log_file: tuple[logging.Logger, logs.BatchedStreamHandler, Path],
) -> None:
    logger, _, path = log_file
    logger.info("listening")
    assert path.read_text() == "INFO listening\n"


async def test_flush_writes_what_is_waiting(
    log_file: tuple[logging.Logger, logs.BatchedStreamHandler, Path],
) -> None:
    logger, handler, path = log_file
    logger.info("peer disconnected")
    handler.flush()  # what logging.shutdown() does at exit
    assert path.read_text() == "INFO peer disconnected\n"


def test_a_timer_left_on_an_ended_loop_does_not_hold_back_the_next_loops_lines(
    log_file: tuple[logging.Logger, logs.BatchedStreamHandler, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, _, path = log_file

    async def log_and_leave() -> None:
        logger.info("first")  # its timer never fires: the loop ends first

    asyncio.run(log_and_leave())
    monkeypatch.setattr(logs, "FLUSH_DELAY", 0.0)

    async def log_and_wait() -> None:
        logger.info("second")
        await next_passes()

    asyncio.run(log_and_wait())
    assert path.read_text() == "INFO first\nINFO second\n"


def test_a_stream_without_a_file_is_used_as_it_is() -> None:
    class Capture:
        def write(self, text: str) -> int:
            return len(text)

        def fileno(self) -> int:
            raise OSError("no file")

    capture = Capture()
    assert logs.block_buffered(capture) is capture  # type: ignore[arg-type]
