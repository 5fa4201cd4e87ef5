"""The loop-hosted Pykka runtime: Pykka's semantics, without a thread per actor."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pykka
import pytest

from actors import runtime
from actors.runtime import LoopActor, LoopFuture
from tests.support import scaled


class Recorder(LoopActor):
    def __init__(
        self,
        events: list[Any],
        fail_on: Any = None,
        fail_start: bool = False,
        failed: asyncio.Future[BaseException] | None = None,
    ) -> None:
        super().__init__()
        self.events = events
        self.fail_on = fail_on
        self.fail_start = fail_start
        self.failed = failed

    def on_start(self) -> None:
        self.events.append(("start", threading.current_thread().name))
        if self.fail_start:
            raise RuntimeError("start failed")

    def on_stop(self) -> None:
        self.events.append("stop")

    def on_failure(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.events.append(("failure", str(exc)))
        if self.failed is not None:
            self.failed.set_result(exc)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, tuple) and message[0] == "later":
            self.tell_later(message[1], message[2])
            return len(self._timers)
        if message == self.fail_on:
            raise ValueError(f"bad {message}")
        self.events.append(message)
        return message * 2 if isinstance(message, int) else None


async def test_messages_are_handled_in_order_on_the_loop_thread_after_on_start() -> None:
    events: list[Any] = []
    ref = Recorder.start(events)
    for n in range(200):  # more than one drain batch
        ref.tell(n)
    assert await ref.ask("sync", block=False) is None
    assert events[0] == ("start", threading.current_thread().name)
    assert events[1:] == [*range(200), "sync"]
    assert await runtime.stop(ref)


async def test_ask_returns_the_reply_as_an_awaitable_future() -> None:
    ref = Recorder.start([])
    future = ref.ask(21, block=False)
    assert isinstance(future, LoopFuture)
    assert await future == 42
    await runtime.stop(ref)


async def test_an_exception_in_an_ask_goes_to_the_caller_and_the_actor_lives_on() -> None:
    events: list[Any] = []
    ref = Recorder.start(events, fail_on="boom")
    with pytest.raises(ValueError, match="bad boom"):
        await ref.ask("boom", block=False)
    assert await ref.ask(1, block=False) == 2
    assert ref.is_alive()
    await runtime.stop(ref)
    assert "stop" in events


async def test_an_exception_in_a_tell_stops_the_actor_and_calls_on_failure_not_on_stop() -> None:
    events: list[Any] = []
    failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
    ref = Recorder.start(events, fail_on="boom", failed=failed)
    ref.tell("boom")
    pending = ref.ask(1, block=False)  # queued behind the failure: answered with ActorDeadError
    exc = await asyncio.wait_for(failed, scaled(5))
    assert str(exc) == "bad boom"
    with pytest.raises(pykka.ActorDeadError):
        await pending
    assert not ref.is_alive()
    assert "stop" not in events and ("failure", "bad boom") in events
    with pytest.raises(pykka.ActorDeadError):
        ref.tell(2)
    assert ref not in runtime.live_actors()


async def test_an_on_start_failure_stops_the_actor_without_on_failure() -> None:
    events: list[Any] = []
    ref = Recorder.start(events, fail_start=True)
    pending = ref.ask(1, block=False)
    with pytest.raises(pykka.ActorDeadError):
        await pending
    assert not ref.is_alive()
    assert not any(isinstance(e, tuple) and e[0] == "failure" for e in events)
    assert ref not in runtime.live_actors()


async def test_live_actors_lists_each_actor_until_it_stops_and_pykkas_registry_none() -> None:
    # Pykka's ActorRegistry is a list its unregister scans: with thousands of rooms alive
    # every room's stop paid for all of them. The runtime keeps its own, by URN.
    refs = [Recorder.start([]) for _ in range(3)]
    assert set(runtime.live_actors()) == set(refs)
    assert pykka.ActorRegistry.get_all() == []
    assert await runtime.stop(refs[1]) is True
    assert set(runtime.live_actors()) == {refs[0], refs[2]}
    for ref in (refs[0], refs[2]):
        await runtime.stop(ref)
    assert runtime.live_actors() == []


async def test_stop_handles_what_was_queued_first_then_refuses_asks() -> None:
    events: list[Any] = []
    ref = Recorder.start(events)
    ref.tell(1)
    stopping = runtime.stop(ref)
    assert await stopping is True
    assert events[1:] == [1, "stop"]
    assert await runtime.stop(ref) is False
    with pytest.raises(pykka.ActorDeadError):
        await ref.ask(1, block=False)


async def test_a_blocking_get_on_the_loop_raises_instead_of_deadlocking() -> None:
    ref = Recorder.start([])
    future = ref.ask(1, block=False)
    with pytest.raises(RuntimeError, match="would block the event loop"):
        future.get(timeout=1)
    assert await future == 2
    assert future.get() == 2  # resolved: reading it is fine
    await runtime.stop(ref)


async def test_tells_from_another_thread_wake_the_loop_and_keep_their_order() -> None:
    events: list[Any] = []
    ref = Recorder.start(events)

    def producer() -> None:
        for n in range(100):
            ref.tell(n)
        # A blocking ask from a non-loop thread is allowed and must not deadlock.
        assert ref.ask("done", timeout=scaled(5)) is None

    await asyncio.wait_for(asyncio.to_thread(producer), scaled(5))
    assert events[1:] == [*range(100), "done"]
    await runtime.stop(ref)


async def test_tell_later_delivers_in_the_mailbox_and_stop_cancels_pending_timers() -> None:
    events: list[Any] = []
    ref = Recorder.start(events)
    assert await ref.ask(("later", 0.01, "tick"), block=False) == 1
    assert await ref.ask(("later", scaled(60), "never"), block=False) == 2
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scaled(5)
    while "tick" not in events and loop.time() < deadline:
        await asyncio.sleep(0.005)  # waiting on a timer: there is no event to await instead
    assert "tick" in events
    assert await ref.ask(("later", scaled(60), "never"), block=False) == 2  # the fired timer was forgotten
    await runtime.stop(ref)
    # asyncio has no public list of pending timers: its private _scheduled is the only
    # place to see that stopping cancelled them (a leaked timer would fire on a dead actor).
    assert all(handle.cancelled() for handle in loop._scheduled if "fire" in repr(handle))


def test_starting_without_a_running_loop_is_refused() -> None:
    with pytest.raises(RuntimeError, match="needs a running asyncio loop"):
        Recorder.start([], failed=None)
    assert runtime.live_actors() == []


async def test_result_waits_for_the_reply_and_times_out_without_one() -> None:
    ref = Recorder.start([])
    assert await ref.ask(21, block=False).result(timeout=scaled(5)) == 42
    never = LoopFuture()
    with pytest.raises(TimeoutError):
        await never.result(timeout=0.01)
    late = LoopFuture()
    asyncio.get_running_loop().call_soon(late.set, "ok")
    assert await late.result(timeout=scaled(5)) == "ok"
    await runtime.stop(ref)


class Batcher(LoopActor):
    """Defers a flush per message the way a sink batches the frames of one drain."""

    def __init__(self, events: list[Any]) -> None:
        super().__init__()
        self.events = events

    def on_receive(self, message: Any) -> None:
        self.events.append(message)
        if message == "fail":
            raise ValueError("the flush must still run")
        assert runtime.after_drain(lambda: self.events.append(("flush", message)))


async def test_after_drain_runs_each_flush_once_the_drain_ends_and_refuses_outside_a_drain() -> None:
    events: list[Any] = []
    ref = Batcher.start(events)
    for n in range(3):  # told together: handled in one drain
        ref.tell(n)
    after: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
    # Queued behind the drain: by the time it runs, the drain and its flushes are done.
    asyncio.get_running_loop().call_soon(lambda: after.set_result(list(events)))
    assert await asyncio.wait_for(after, scaled(5)) == [0, 1, 2, ("flush", 0), ("flush", 1), ("flush", 2)]
    assert runtime.after_drain(lambda: events.append("never")) is False  # not in a drain: nothing kept
    assert await runtime.stop(ref)
    assert "never" not in events


async def test_the_flushes_of_a_drain_run_even_when_a_message_fails_the_actor() -> None:
    events: list[Any] = []
    ref = Batcher.start(events)
    ref.tell(1)
    ref.tell("fail")
    await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, ref.actor_stopped.wait), scaled(5))
    assert events == [1, "fail", ("flush", 1)]


class Teller(LoopActor):
    """Tells its peer (once it knows one) about every message; on "pass it on" also
    queues a plain loop callback first, resolving ``next_callback``."""

    def __init__(self, events: list[Any], next_callback: asyncio.Future[None] | None = None) -> None:
        super().__init__()
        self.events = events
        self.next_callback = next_callback
        self.peer: pykka.ActorRef[Any] | None = None

    def on_receive(self, message: Any) -> None:
        if isinstance(message, pykka.ActorRef):
            self.peer = message
            return
        self.events.append(message)
        if message == "pass it on" and self.next_callback is not None:
            asyncio.get_running_loop().call_soon(self._loop_callback)
        if self.peer is not None and self.peer.is_alive():
            self.peer.tell("ball" if message == "ball" else "passed")

    def _loop_callback(self) -> None:
        self.events.append("the loop's next callback")
        assert self.next_callback is not None
        self.next_callback.set_result(None)


async def test_an_actor_told_during_a_drain_handles_it_before_the_loops_next_callback() -> None:
    # A join goes transport -> Hub -> Room: without this each hop waited for a pass of
    # the loop of its own, behind every callback queued meanwhile.
    events: list[Any] = []
    next_callback: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    first, second = Teller.start(events, next_callback), Recorder.start(events)
    first.tell(second)
    assert await second.ask(1, block=False) == 2  # both started, and idle
    first.tell("pass it on")
    await asyncio.wait_for(next_callback, scaled(5))
    assert events[-3:] == ["pass it on", "passed", "the loop's next callback"]
    for ref in (first, second):
        assert await runtime.stop(ref)


async def test_actors_that_keep_telling_each_other_still_yield_to_the_loop() -> None:
    events: list[Any] = []
    ping, pong = Teller.start(events), Teller.start(events)
    ping.tell(pong)
    pong.tell(ping)
    ping.tell("ball")  # and back, for ever
    hops = []
    for _ in range(4):
        await asyncio.sleep(0)  # a pass of the loop: it would never come if they starved it
        hops.append(events.count("ball"))
    steps = [b - a for a, b in zip(hops, hops[1:], strict=False)]
    assert all(1 < step <= 64 for step in steps), steps  # chained, and a few at a time
    for ref in (ping, pong):
        await runtime.stop(ref)
