"""The loop collectors write what prometheus-client's own Counter, Gauge and Histogram
write for the same updates, in both exposition formats (minus ``_created``, which the
service never exports)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from metrics.loop_collectors import LoopCounter, LoopGauge, LoopHistogram

BUCKETS = (0.001, 0.01, 0.1, 1.0)

Expose = Callable[[CollectorRegistry], bytes]


def text(registry: CollectorRegistry, expose: Expose) -> list[str]:
    return [line for line in expose(registry).decode().splitlines() if "_created" not in line]


@pytest.mark.parametrize("expose", [generate_latest, generate_openmetrics], ids=["text", "openmetrics"])
@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.tuples(st.sampled_from(["offer", "answer", "ice-candidate"]), st.integers(0, 5))),
    plain=st.integers(0, 3),
    gauge=st.lists(st.booleans()),
    observed=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False)),
)
@example(counts=[], plain=0, gauge=[], observed=[*BUCKETS, 0.0, 2.0])  # on every bound, and past the last
def test_the_exposition_is_prometheus_clients_own(
    expose: Expose, counts: list[tuple[str, int]], plain: int, gauge: list[bool], observed: list[float]
) -> None:
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    counter = Counter("demo_messages_total", "Messages by type", ["type"], registry=theirs)
    loop_counter = LoopCounter("demo_messages_total", "Messages by type", ["type"])
    unlabelled = Counter("demo_drops_total", "Drops", registry=theirs)
    loop_unlabelled = LoopCounter("demo_drops_total", "Drops")
    up_down = Gauge("demo_clients", "Clients", registry=theirs)
    loop_up_down = LoopGauge("demo_clients", "Clients")
    histogram = Histogram("demo_latency_seconds", "Latency", buckets=BUCKETS, registry=theirs)
    loop_histogram = LoopHistogram("demo_latency_seconds", "Latency", BUCKETS)
    for collector in (loop_counter, loop_unlabelled, loop_up_down, loop_histogram):
        ours.register(collector)

    for type_, amount in counts:
        counter.labels(type_).inc(amount)
        loop_counter.labels(type_).inc(amount)
    unlabelled.inc(plain)
    loop_unlabelled.inc(plain)
    for up in gauge:
        (up_down.inc if up else up_down.dec)()
        (loop_up_down.inc if up else loop_up_down.dec)()
    for value in observed:
        histogram.observe(value)
        loop_histogram.observe(value)

    assert text(ours, expose) == text(theirs, expose)


def test_a_series_needs_exactly_its_labels_and_a_registry_refuses_a_second_of_a_name() -> None:
    counter = LoopCounter("demo_joins_total", "Joins", ["path", "outcome"])
    with pytest.raises(ValueError):
        counter.labels("ws")
    registry = CollectorRegistry()
    registry.register(counter)
    with pytest.raises(ValueError):  # describe() names its series, as prometheus-client's do
        registry.register(LoopCounter("demo_joins_total", "Joins again"))
