"""A Pykka runtime that hosts actors on the asyncio loop Tornado runs on.

Why not ``ThreadingActor``: measured on this kind of machine, one thread per room
cost 1.5-2.4x the CPU of a bare Tornado relay per message (every message crossed
threads twice and handed over the GIL) and fell seconds behind at 2.5k msg/s.
Actors drained by loop callbacks cost 1.0x (docs/architecture.md has the figures).

The runtime implements Pykka's three runtime hooks (``_create_actor_inbox``,
``_create_future``, ``_start_actor_loop``) and keeps ``ThreadingActor``'s failure
semantics (``pykka._actor.Actor._actor_loop_running`` is the reference):

- an exception in a ``tell`` handler logs, stops the actor and calls ``on_failure``;
- an exception in an ``ask`` handler goes back to the caller, the actor lives on;
- ``on_stop`` is not called after a failure; an ``on_start`` failure stops the
  actor without ``on_failure``;
- messages left in the mailbox when the actor stops: asks get ``ActorDeadError``,
  tells are dropped.

Rules that come with running on the loop: nothing on the loop may block, so never
call ``ask(block=True)``, ``stop(block=True)`` or ``Future.get()`` on an unresolved
future from the loop thread (``LoopFuture.get`` raises instead of deadlocking);
``await`` the future, or use ``stop()`` below.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

import pykka
from pykka import messages as pykka_messages
from pykka._threading import ThreadingFutureResult

if TYPE_CHECKING:
    from pykka._envelope import Envelope
    from pykka._types import OptExcInfo

logger = logging.getLogger(__name__)

# Messages handled per loop callback before yielding to other callbacks (sockets,
# other actors): one busy room must not starve the rest of the process.
BATCH = 64
# Drains of other actors run after a drain that woke them (see _call_soon), at most this
# many before the rest go back to the loop.
CHAIN = 16


T = TypeVar("T")

# Every LoopActor from start() until its teardown, by URN: the runtime's registry in place
# of Pykka's ActorRegistry, a global list whose unregister scans it twice. With 5k rooms
# alive that made a room's start and stop cost 104 us instead of 20 (386 us with 20k);
# with this dict, 19 us in all three cases.
_live: dict[str, pykka.ActorRef[Any]] = {}


def live_actors() -> list[pykka.ActorRef[Any]]:
    """The LoopActors started and not yet torn down (metrics, leak checks in tests)."""
    return list(_live.values())


class _DrainScope(threading.local):
    """What to run when the actor drain in progress on this thread ends (see after_drain)."""

    flushes: list[Callable[[], None]] | None = None
    # Set while the outermost drain on this thread runs: what its messages woke.
    woken: collections.deque[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] | None = None


_scope = _DrainScope()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """``loop.call_soon(callback)`` from the loop's thread, except during an actor's
    drain: then ``callback`` (another actor's drain or start) runs right after that
    drain and its flushes, before the loop's next callback.

    An actor that tells another (a join through the Hub to its Room, a Room's idle
    report back) would otherwise wait for a pass of the loop of its own, with a
    zero-timeout poll: ~3% of a call setup's CPU (issue 12). Frames from sockets still
    go through call_soon, so a read's frames are drained, and written, together."""
    woken = _scope.woken
    if woken is None:
        loop.call_soon(callback)
    else:
        woken.append((loop, callback))


def _run_woken(woken: collections.deque[tuple[asyncio.AbstractEventLoop, Callable[[], None]]]) -> None:
    """Run up to CHAIN of what a drain woke (and what those woke), in order; the rest
    goes back to the loop, so that actors telling each other cannot starve it."""
    try:
        for _ in range(CHAIN):
            if not woken:
                return
            woken.popleft()[1]()
    finally:
        _scope.woken = None
        for loop, callback in woken:
            loop.call_soon(callback)


def after_drain(flush: Callable[[], None]) -> bool:
    """Run ``flush`` once the actor drain in progress on this thread has ended.

    Returns False, and keeps nothing, when no drain is in progress. A sink uses it to
    write the frames one drain delivers to one client in a single socket write
    (the ten ICE candidates a peer trickles arrive in one read and leave in one
    write) instead of one write, one future and one send() per frame. ``flush``
    runs before the loop runs any other callback, so order between clients and
    callbacks is kept; it must not raise.
    """
    flushes = _scope.flushes
    if flushes is None:
        return False
    flushes.append(flush)
    return True


class LoopFuture(pykka.ThreadingFuture[T]):
    """A Pykka future that can also be awaited on an asyncio loop without blocking.

    ``T`` is what it is set to: a message's ``reply`` field names it (actors/messages.py),
    so what a join is answered with is checked where it is set and where it is awaited.
    """

    def __init__(self) -> None:
        super().__init__()
        # Emptied by _wake_waiters() when the value is set; a waiter that timed out stays
        # until then, and goes with the future (owned by the one awaiting it).
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def done(self) -> bool:
        return self._result is not None

    def get(self, *, timeout: float | None = None) -> T:
        if self._result is None and self._get_hook is None and _loop_running_here():
            # A blocking wait here would stall every connection and deadlock an
            # actor waiting on itself.
            raise RuntimeError("LoopFuture.get() would block the event loop: await it")
        value: T = super().get(timeout=timeout)
        return value

    def set(self, value: T | None = None) -> None:
        super().set(value)
        self._wake_waiters()

    def set_exception(self, exc_info: OptExcInfo | None = None) -> None:
        super().set_exception(exc_info if exc_info is not None else sys.exc_info())
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        with self._condition:
            waiters, self._waiters = self._waiters, []
        if not waiters:
            return
        running = _running_loop()
        for loop, waiter in waiters:
            if loop is running:
                _resolve(waiter)
            else:
                loop.call_soon_threadsafe(_resolve, waiter)

    def _waiter(self) -> asyncio.Future[None] | None:
        """An asyncio future resolved when the value is set; None if it already is."""
        if self._get_hook is not None:
            return None
        loop = asyncio.get_running_loop()
        with self._condition:
            if self._result is not None:
                return None
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        return waiter

    def __await__(self) -> Generator[Any, None, T]:
        waiter = self._waiter()
        if waiter is not None:
            yield from waiter.__await__()
        return self._outcome()

    __iter__ = __await__

    async def result(self, timeout: float) -> T:
        """Await the value for at most ``timeout`` seconds (TimeoutError after that).

        Cheaper than ``asyncio.wait_for``, which wraps the wait in a Task: every join
        waits on one of these.
        """
        waiter = self._waiter()
        if waiter is not None:
            timer = waiter.get_loop().call_later(timeout, _time_out, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        return self._outcome()

    def _outcome(self) -> T:
        """The value, or the exception raised without leaving a reference cycle.

        Raising an exception stored in a future makes a cycle: the exception's traceback
        holds the frames it passed (Pykka's ``get`` keeps it in a local; ours and the
        awaiting caller's hold the future, which holds the exception). On the join path
        (every refused join raises here) that cycle took the whole connection's handler
        with it into the rare full collections (issue 10). So the finished frames are
        cleared and the future keeps only the exception's type: an awaited future has
        one consumer, and a later ``get`` still raises that type."""
        # The common case without Pykka's lock and get(): a result is set once, under the
        # lock. (No local for it: the frame below would hold the exception it raises.)
        if self._result is not None and self._result.exc_info is None:
            return cast(T, self._result.value)
        try:
            return self.get(timeout=0)
        except BaseException as exc:
            traceback.clear_frames(exc.__traceback__)  # skips frames still running
            with self._condition:
                if self._result is not None and self._result.exc_info is not None:
                    self._result = ThreadingFutureResult(exc_info=(self._result.exc_info[0], None, None))
            raise


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _loop_running_here() -> bool:
    return _running_loop() is not None


class LoopInbox:
    """An actor mailbox drained by callbacks on one asyncio loop.

    ``put`` is safe from any thread; the drain runs on the loop's thread only.
    """

    def __init__(self) -> None:
        # Drained by the actor; what is left when it stops is failed (asks) or dropped
        # (tells) by Pykka's _actor_loop_teardown.
        self._queue: collections.deque[Envelope[Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._drain: Any = None

    def bind(self, loop: asyncio.AbstractEventLoop, drain: Any) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._drain = drain

    def unbind(self) -> None:
        """Forget the drain (a bound method of the actor) once the actor has stopped.

        The actor holds its inbox and the inbox held the actor: a reference cycle that
        only the cyclic GC could free, and server.tune_gc() makes full collections
        rare, so every stopped Room lingered for minutes. Without the cycle a stopped
        actor is freed by reference counting as soon as its last ActorRef goes."""
        with self._lock:
            self._loop = None
            self._drain = None

    def put(self, envelope: Envelope[Any], /) -> None:
        with self._lock:  # one lock for both: this runs for every message
            self._queue.append(envelope)
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
        self._schedule(self._loop)

    def kick(self) -> None:
        """Schedule a drain unless one is already scheduled."""
        with self._lock:
            if self._scheduled or self._loop is None:
                return
            self._scheduled = True
        self._schedule(self._loop)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.get_ident() == self._loop_thread:
            _call_soon(loop, self._run)
        else:
            loop.call_soon_threadsafe(self._run)

    def get(self) -> Envelope[Any]:
        return self._queue.popleft()

    def empty(self) -> bool:
        return not self._queue

    def __len__(self) -> int:
        return len(self._queue)

    def _run(self) -> None:
        with self._lock:
            self._scheduled = False
            drain = self._drain
        if drain is not None and drain():  # None: the actor stopped since this was scheduled
            self.kick()


class LoopActor(pykka.Actor):
    """Base class for actors that run on the asyncio loop that is running at start().

    Start them from the loop's thread (Tornado handlers and other actors are there).
    """

    actor_inbox: LoopInbox

    @classmethod
    def start(cls, *args: Any, **kwargs: Any) -> pykka.ActorRef[Self]:
        """As ``pykka.Actor.start``, registered in ``live_actors()`` instead of Pykka's
        ActorRegistry (see ``_live``); ``_teardown`` removes it."""
        actor = cls(*args, **kwargs)
        ref = actor.actor_ref
        _live[actor.actor_urn] = ref
        actor._start_actor_loop()
        return ref

    @staticmethod
    def _create_actor_inbox() -> LoopInbox:
        return LoopInbox()

    @staticmethod
    def _create_future() -> LoopFuture[Any]:
        return LoopFuture()

    def _start_actor_loop(self) -> None:
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError as exc:
            # start() registered us already: undo that so nothing points at a dead actor.
            del _live[self.actor_urn]
            self.actor_stopped.set()
            raise RuntimeError(f"{type(self).__name__}.start() needs a running asyncio loop") from exc
        self._setup_done = False
        # A handle removes itself when it fires; _teardown() cancels and clears the rest.
        self._timers: set[asyncio.TimerHandle] = set()
        self.actor_inbox.bind(self._loop, self._drain)
        # on_start runs on the loop before the first message, as in a thread: this
        # callback is queued before any drain a later tell() can schedule.
        _call_soon(self._loop, self._setup)

    def tell_later(self, delay: float, message: Any) -> None:
        """Tell this actor ``message`` after ``delay`` seconds (timers, expiries)."""

        # The handle is kept in a box that fire() empties: asyncio keeps a fired handle's
        # callback, so a closure holding its own handle would be a cycle (handle ->
        # fire -> handle) taking this actor with it, and every room whose timer fired
        # (a dropped member's grace, a REST stub's TTL) would wait for a full collection.
        box: list[asyncio.TimerHandle] = []

        def fire() -> None:
            self._timers.discard(box.pop())
            if not self.actor_stopped.is_set():
                self.actor_inbox.put(_envelope(message))

        box.append(self._loop.call_later(delay, fire))
        self._timers.add(box[0])

    def _setup(self) -> None:
        self._actor_loop_setup()
        self._setup_done = True
        if self.actor_stopped.is_set():
            self._teardown()
        else:
            self.actor_inbox.kick()

    def _drain(self) -> bool:
        """Handle up to BATCH messages; return True if more are waiting."""
        if not self._setup_done:
            return False  # _setup kicks the drain once on_start has run
        flushes: list[Callable[[], None]] = []
        outer, _scope.flushes = _scope.flushes, flushes
        woken = None
        if _scope.woken is None:  # the outermost drain: it runs what the drains wake
            woken = _scope.woken = collections.deque()
        try:
            return self._drain_batch()
        finally:
            _scope.flushes = outer
            for flush in flushes:
                flush()
            if woken is not None:
                _run_woken(woken)

    def _drain_batch(self) -> bool:
        inbox = self.actor_inbox
        for _ in range(BATCH):
            if self.actor_stopped.is_set():
                self._teardown()
                return False
            if inbox.empty():
                return False
            self._handle_envelope(inbox.get())
        if self.actor_stopped.is_set():
            self._teardown()
            return False
        return not inbox.empty()

    def _handle_envelope(self, envelope: Envelope[Any]) -> None:
        # Same branches as pykka's _actor_loop_running, one envelope at a time.
        try:
            response = self._handle_receive(envelope.message)
            if envelope.reply_to is not None:
                envelope.reply_to.set(response)
        except Exception:
            if envelope.reply_to is not None:
                logger.info("Exception returned from %s to caller:", self, exc_info=True)
                envelope.reply_to.set_exception()
            else:
                self._handle_failure(*sys.exc_info())
                try:
                    self.on_failure(*sys.exc_info())
                except Exception:
                    self._handle_failure(*sys.exc_info())
        except BaseException:
            # KeyboardInterrupt/SystemExit: stop this actor and let it end the loop.
            self._stop()
            raise

    def _teardown(self) -> None:
        # Cancelled handles drop their callbacks (closures over this actor) at once.
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        self._actor_loop_teardown()
        self.actor_inbox.unbind()
        _live.pop(self.actor_urn, None)


def _envelope(message: Any) -> Envelope[Any]:
    from pykka._envelope import Envelope

    return Envelope(message)


async def stop(ref: pykka.ActorRef[Any]) -> bool:
    """Stop an actor without blocking the loop; True if it was alive."""
    try:
        await ref.ask(pykka_messages._ActorStop(), block=False)
    except pykka.ActorDeadError:
        return False
    return True
