"""LazyReaderLoop with real sockets and Tornado IOStreams, on asyncio's own loop (each
test has a loop of its own, so install() makes a fresh one).

Each test reads from a socketpair the way a WebSocket connection does: a read waits
on the socket, and when it is served leaving bytes in the stream's buffer, Tornado
drops its reader."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from tests.support import running_server
from transport import ioloop
from transport.ioloop import LazyReaderLoop


async def next_pass() -> None:
    """Let the callbacks scheduled so far run: one pass of the loop."""
    await asyncio.sleep(0)
    await asyncio.sleep(0)


async def read_leaving_a_byte(stream: IOStream, peer: socket.socket) -> None:
    """A read served from the socket that leaves a byte in the stream's buffer, after
    which Tornado drops the stream's reader."""
    first = stream.read_bytes(1)  # waits on the socket: Tornado adds its reader
    peer.sendall(b"ab")
    assert await first == b"a"  # "b" stays buffered


@pytest.fixture
async def pair() -> AsyncIterator[tuple[LazyReaderLoop, IOStream, socket.socket, list[str]]]:
    loop = ioloop.install()
    assert isinstance(loop, LazyReaderLoop)
    # What the loop did to the asyncio loop's readers, in order.
    calls: list[str] = []
    aio = asyncio.get_running_loop()

    def counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            calls.append(name)
            return method(*args)

        return wrapper

    aio.add_reader = counted("add", aio.add_reader)  # type: ignore[method-assign]
    aio.remove_reader = counted("remove", aio.remove_reader)  # type: ignore[method-assign]
    ours, theirs = socket.socketpair()
    stream = IOStream(ours)
    try:
        yield loop, stream, theirs, calls
    finally:
        stream.close()
        theirs.close()


async def test_a_reader_asked_for_again_within_the_pass_is_never_removed(
    pair: tuple[LazyReaderLoop, IOStream, socket.socket, list[str]],
) -> None:
    loop, stream, peer, calls = pair
    await read_leaving_a_byte(stream, peer)
    # As a frame loop does: the next read at once, for more than is buffered.
    more = stream.read_bytes(2)
    await next_pass()
    peer.sendall(b"c")
    assert await asyncio.wait_for(more, 5) == b"bc"
    assert calls == ["add"]  # one reader for the stream's life so far
    assert stream.fileno().fileno() in loop.readers


async def test_an_unwanted_reader_stays_until_the_socket_is_readable_then_goes_unread(
    pair: tuple[LazyReaderLoop, IOStream, socket.socket, list[str]],
) -> None:
    loop, stream, peer, calls = pair
    fd = stream.fileno().fileno()
    await read_leaving_a_byte(stream, peer)
    await next_pass()
    assert fd in loop.readers and calls == ["add"]  # nothing arrived: nothing changed
    peer.sendall(b"c")
    await next_pass()  # the loop polls and finds the socket readable
    assert fd not in loop.readers and calls == ["add", "remove"]
    # The stream did not read "c": Tornado's flow control holds.
    assert stream.read_bytes(2, partial=True).result() == b"b"  # the buffer only
    assert await stream.read_bytes(1) == b"c"  # read from the socket when asked
    last = stream.read_bytes(1)  # waits on the socket: the reader is back
    peer.sendall(b"d")
    assert await asyncio.wait_for(last, 5) == b"d"
    assert calls == ["add", "remove", "add"]


async def test_closing_a_stream_removes_its_reader_at_once(
    pair: tuple[LazyReaderLoop, IOStream, socket.socket, list[str]],
) -> None:
    loop, stream, peer, calls = pair
    fd = stream.fileno().fileno()
    await read_leaving_a_byte(stream, peer)
    stream.close()
    assert fd not in loop.readers and fd not in loop.handlers and calls == ["add", "remove"]
    await next_pass()
    assert calls == ["add", "remove"]


async def test_a_new_stream_on_a_closed_streams_fd_number_reads_normally(
    pair: tuple[LazyReaderLoop, IOStream, socket.socket, list[str]],
) -> None:
    loop, stream, peer, calls = pair
    fd = stream.fileno().fileno()
    await read_leaving_a_byte(stream, peer)
    stream.close()  # its reader was unwanted, and now its fd number is free
    ours, theirs = socket.socketpair()
    reused = IOStream(ours)
    try:
        assert ours.fileno() == fd  # the lowest free number, as the kernel hands them out
        read = reused.read_bytes(1)
        await next_pass()
        theirs.sendall(b"x")
        assert await asyncio.wait_for(read, 5) == b"x"
    finally:
        reused.close()
        theirs.close()


async def test_install_hands_back_the_loop_tornado_made_already() -> None:
    made = IOLoop.current()
    assert ioloop.install() is made


async def test_the_server_runs_on_the_lazy_reader_loop() -> None:
    async with running_server():
        assert isinstance(IOLoop.current(), LazyReaderLoop)
