"""The read-ahead thread: order kept, errors raised in the consumer, no thread left behind."""

from __future__ import annotations

import threading

import pytest

from jpki_mock.crl.prefetch import prefetched


def test_items_come_out_in_order_across_batches():
    assert list(prefetched(iter(range(10_005)), batch=1000)) == list(range(10_005))
    assert list(prefetched(iter([]))) == []


def test_a_producer_error_is_raised_in_the_consumer():
    def rows():
        yield 1
        yield 2
        raise ConnectionError("database went away")

    got = []

    def consume() -> None:
        for item in prefetched(rows(), batch=1):
            got.append(item)

    with pytest.raises(ConnectionError, match="went away"):
        consume()
    assert got == [1, 2]


def test_a_consumer_that_stops_early_stops_the_producer():
    before = threading.active_count()
    it = prefetched(iter(range(1_000_000)), batch=10, depth=1)
    assert next(it) == 0
    it.close()  # what happens when the writer raises
    assert threading.active_count() == before
