"""Counting live objects of our own types, for the memory tests (issue 10).

The service relies on reference counting to free a closed connection or a stopped
room at once: ``transport.server.tune_gc`` makes full garbage collections rare, so
anything left in a reference cycle lingers for minutes. The memory tests therefore
run with the cyclic collector off and count what is still alive afterwards.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

# Modules whose classes are ours to count (pykka's refs and futures come with our actors).
OWN_MODULES = ("actors.", "transport.", "metrics.", "tests.recording", "pykka.")


def own_objects() -> Counter[str]:
    """Live, GC-tracked objects of our own classes, by qualified class name."""
    counts: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        module = cls.__module__
        if isinstance(module, str) and module.startswith(OWN_MODULES):  # some C types have no str
            counts[f"{module}.{cls.__qualname__}"] += 1
    return counts


@contextmanager
def refcounting_only() -> Iterator[None]:
    """Run the body with the cyclic collector off (after clearing what it would find)."""
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def outlived(baseline: Counter[str], cycles: int) -> str:
    """'' if nothing of ours outlived ``cycles`` cycles, else what did and why."""
    leaked = own_objects() - baseline
    if not leaked:
        return ""
    gc.collect()
    in_cycles = leaked - (own_objects() - baseline)
    return (
        f"after {cycles} cycles these objects of ours are still alive: {dict(leaked.most_common())}; "
        f"of them, only reference cycles kept alive {dict(in_cycles.most_common()) or 'none'} "
        "(freed by a full collection alone, which tune_gc makes rare); the rest are still referenced"
    )
