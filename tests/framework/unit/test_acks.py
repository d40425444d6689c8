"""Deliveries are settled in batches: one multiple ack where it covers only finished messages, nacks first."""

from __future__ import annotations

import threading

import pytest

from broker_jobs.acks import Frame, Settlements


def settle_all(delivered: list[int], settled: list[tuple[int, bool]]) -> list[Frame]:
    book = Settlements()
    for tag in delivered:
        book.delivered(tag)
    for tag, ack in settled:
        book.settle(tag, ack)
    return book.frames()


@pytest.mark.parametrize(("delivered", "settled", "frames"), [
    # All finished in order: one multiple ack.
    ([1, 2, 3], [(1, True), (2, True), (3, True)], [Frame(True, 3, multiple=True)]),
    # One finished: a plain ack.
    ([1, 2, 3], [(1, True)], [Frame(True, 1)]),
    # Finished out of order, the oldest still running: each acked alone, none covering it.
    ([1, 2, 3], [(3, True), (2, True)], [Frame(True, 2), Frame(True, 3)]),
    # The oldest finished, the second running: 1 acked, 3 alone.
    ([1, 2, 3], [(1, True), (3, True)], [Frame(True, 1), Frame(True, 3)]),
    # A nack goes first, and the multiple ack may cover its tag (no longer outstanding).
    ([1, 2, 3], [(1, True), (2, False), (3, True)], [Frame(False, 2), Frame(True, 3, multiple=True)]),
    # Only nacks: never folded.
    ([1, 2], [(2, False), (1, False)], [Frame(False, 2), Frame(False, 1)]),
    # A malformed delivery nacked while a later one finished: nack first, the ack covers both.
    ([5, 6], [(6, True), (5, False)], [Frame(False, 5), Frame(True, 6)]),
])
def test_a_flush_sends(delivered: list[int], settled: list[tuple[int, bool]], frames: list[Frame]) -> None:
    assert settle_all(delivered, settled) == frames


def test_a_multiple_ack_never_covers_a_message_still_running() -> None:
    book = Settlements()
    for tag in range(1, 101):
        book.delivered(tag)
    running = {17, 50}
    for tag in range(1, 101):
        if tag not in running:
            book.settle(tag, True)
    frames = book.frames()
    for frame in frames:
        covered = range(1, frame.tag + 1) if frame.multiple else [frame.tag]
        assert running.isdisjoint(covered), frame
    acked = {t for f in frames for t in (range(1, f.tag + 1) if f.multiple else [f.tag])}
    assert acked == set(range(1, 101)) - running
    assert book.open_count == 2
    book.settle(17, True)
    assert book.frames() == [Frame(True, 17)]  # 50 still open
    book.settle(50, True)
    assert book.frames() == [Frame(True, 50)]
    assert book.open_count == 0


def test_only_the_first_settlement_after_a_flush_asks_for_a_flush() -> None:
    book = Settlements()
    for tag in (1, 2, 3):
        book.delivered(tag)
    assert book.settle(1, True) is True
    assert book.settle(2, True) is False
    assert book.frames() == [Frame(True, 2, multiple=True)]
    assert book.settle(3, True) is True
    assert book.frames() == [Frame(True, 3)]
    assert book.frames() == []


def test_worker_threads_settling_at_once_lose_nothing() -> None:
    book = Settlements()
    tags = range(1, 8001)
    for tag in tags:
        book.delivered(tag)
    flushes_asked = []

    def worker(mine: range) -> None:
        for tag in mine:
            if book.settle(tag, tag % 97 != 0):
                flushes_asked.append(tag)

    threads = [threading.Thread(target=worker, args=(range(i, 8001, 8),)) for i in range(1, 9)]
    for thread in threads:
        thread.start()
    frames: list[Frame] = []
    while any(t.is_alive() for t in threads):
        frames += book.frames()
    for thread in threads:
        thread.join()
    frames += book.frames()
    nacked = {f.tag for f in frames if not f.ack}
    assert nacked == {t for t in tags if t % 97 == 0}
    assert book.open_count == 0
    # Every ack frame covers only acked tags that were not yet settled (a multiple ack: up to its tag).
    settled: set[int] = set()
    for frame in frames:
        if not frame.ack:
            settled.add(frame.tag)
            continue
        covered = {t for t in range(1, frame.tag + 1) if t not in settled} if frame.multiple else {frame.tag}
        assert not covered & nacked - settled, frame
        settled |= covered
    assert settled == set(tags)
    assert len(flushes_asked) <= len(frames) + 8
