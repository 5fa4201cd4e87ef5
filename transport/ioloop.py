"""Tornado's bridge to the asyncio loop, removing a socket's reader only when it matters.

Tornado's IOStream stops watching a socket for reads whenever it has served a read and
bytes are left in its buffer (the next WebSocket frame of the same TCP segment, a
request's body), and watches it again as soon as its reader asks for more bytes than
the buffer holds: a remove_reader and an add_reader for nearly every frame read from
the network. On uvloop each pair is a new libuv poll handle and six epoll_ctl calls
(strace: 6 per relayed frame, on the floor relay on uvloop as well); on asyncio's own
loop two.

Here a reader Tornado drops stays registered, marked unwanted, until the socket
becomes readable: then it goes, without the stream hearing of it, as if it had gone
at once (epoll is level-triggered: the event comes back once reads are wanted again).
If Tornado asks for reads again first, which the frame loop nearly always does within
the same pass, nothing was changed. Closing a stream (remove_handler) still removes
its reader at once.
"""

from __future__ import annotations

from typing import Any

from tornado.ioloop import IOLoop
from tornado.platform.asyncio import AsyncIOMainLoop

_Selectable = Any  # tornado.ioloop._Selectable: an int fd or an object with fileno()


class LazyReaderLoop(AsyncIOMainLoop):
    """The IOLoop of the running asyncio loop (AsyncIOMainLoop, which Tornado creates
    by itself otherwise), with reader removal deferred as described above."""

    def initialize(self, **kwargs: Any) -> None:  # type: ignore[override]  # as AsyncIOMainLoop's
        self._unwanted: set[int] = set()  # fds whose reader Tornado has dropped
        super().initialize(**kwargs)

    def update_handler(self, fd: _Selectable, events: int) -> None:
        fileno, _ = self.split_fd(fd)
        if events & IOLoop.READ:
            self._unwanted.discard(fileno)
        elif fileno in self.readers:
            self._unwanted.add(fileno)
            events |= IOLoop.READ  # kept until the socket is readable
        super().update_handler(fd, events)

    def remove_handler(self, fd: _Selectable) -> None:
        self._unwanted.discard(self.split_fd(fd)[0])
        super().remove_handler(fd)

    def _handle_events(self, fd: int, events: int) -> None:
        if events == IOLoop.READ and fd in self._unwanted:
            # Reads are not wanted: remove the reader now, as Tornado asked (a later
            # update_handler or remove_handler forgets the mark).
            super().update_handler(fd, IOLoop.WRITE if fd in self.writers else 0)
            return
        super()._handle_events(fd, events)


def install() -> IOLoop:
    """The IOLoop for the running asyncio loop: a LazyReaderLoop, unless Tornado made
    one for this loop already (then that one, which only costs more system calls).
    Call it before any Tornado server or stream is made on this loop."""
    loop: IOLoop
    try:
        loop = LazyReaderLoop()
    except RuntimeError:  # "IOLoop ... already associated with asyncio loop ..."
        loop = IOLoop.current()
    return loop
