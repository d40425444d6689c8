"""Instants kept as integers (microseconds since the Unix epoch) and their ISO 8601 text, fast.

``jobs simulate`` prints hundreds of thousands of slots; a ``datetime`` and an ``isoformat`` per slot cost more
than the rest of the simulation.  Between two DST transitions a zone's offset is constant, so a slot's wall time
is the integer plus that offset, and its text is a date (formatted once per day) followed by a time of day
(formatted once per distinct time: a schedule has few) and the offset (once per stretch): a lookup and a
concatenation per slot.  The text is what ``datetime.isoformat`` writes, byte for byte (microseconds only when
there are some, the offset with its seconds when it has any).
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise
from typing import NamedTuple
from zoneinfo import ZoneInfo

from .cron import DAY_MICROS, EPOCH_ORDINAL, MICROS
from .triggers import offset_changes

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: ``YYYY-MM-DDT``: every ``datetime.isoformat`` starts with these 11 characters (years have 4 digits).
_DATE_WIDTH = 11


class Stretch(NamedTuple):
    """Slots ``[lo, hi)`` of a list, all under one UTC offset.

    Attributes:
      lo: The first slot's index.
      hi: One past the last slot's index.
      offset: The offset, in microseconds.
      suffix: The offset as ``isoformat`` writes it (``+01:00``, ``-03:30``, ``+00:09:21``).
    """

    lo: int
    hi: int
    offset: int
    suffix: str


class _Dates(dict[int, str]):
    """``YYYY-MM-DDT`` by day number (days since 1970-01-01), formatted at first use."""

    def __missing__(self, day: int) -> str:
        text = self[day] = date.fromordinal(day + EPOCH_ORDINAL).isoformat() + "T"
        return text


class _Times(dict[int, str]):
    """``HH:MM:SS[.ffffff]``, then ``suffix`` (the whole padded to ``width``), then ``tail``, by microsecond of the
    day, formatted at first use."""

    def __init__(self, suffix: str, width: int, tail: str) -> None:
        super().__init__()
        self.suffix, self.width, self.tail = suffix, width, tail

    def __missing__(self, micros: int) -> str:
        seconds, micro = divmod(micros, MICROS)
        clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        text = self[micros] = (clock + (f".{micro:06d}" if micro else "") + self.suffix).ljust(self.width) + self.tail
        return text


def as_micros(instant: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (instant - _EPOCH) // _MICROSECOND


def as_datetime(micros: int) -> datetime:
    """Microseconds since the epoch as an aware UTC datetime."""
    return _EPOCH + micros * _MICROSECOND


def stretches(timezone_name: str, zone: ZoneInfo, slots: Sequence[int]) -> list[Stretch]:
    """``slots`` (ordered) cut where ``zone``'s offset changes, each piece with its offset."""
    if not slots:
        return []
    changes = offset_changes(timezone_name, as_datetime(slots[0]), as_datetime(slots[-1]))
    bounds = [0, *(bisect.bisect_left(slots, as_micros(instant)) for instant, _, _ in changes), len(slots)]
    pieces = []
    for lo, hi in pairwise(bounds):
        if lo < hi:
            offset = as_datetime(slots[lo]).astimezone(zone).utcoffset()
            assert offset is not None  # a ZoneInfo always has one
            pieces.append(Stretch(lo, hi, offset // _MICROSECOND, _suffix(offset)))
    return pieces


def local_texts(slots: Sequence[int], pieces: Sequence[Stretch], *, width: int = 0, tail: str = "") -> list[str]:
    """Each slot on its stretch's wall clock, as ``isoformat`` writes it (padded to ``width``), then ``tail``.

    Day by day: a day's slots are its date's text plus their time of day's (two lookups and a concatenation).
    """
    dates = _Dates()
    out: list[str] = []
    for lo, hi, offset, suffix in pieces:
        times = _Times(suffix, width - _DATE_WIDTH, tail)
        at = lo
        while at < hi:
            day = (slots[at] + offset) // DAY_MICROS
            midnight = day * DAY_MICROS - offset  # the day's first instant: a slot minus it is its time of day
            upto = bisect.bisect_left(slots, midnight + DAY_MICROS, at, hi)
            date_text = dates[day]
            out += [date_text + times[slot - midnight] for slot in slots[at:upto]]
            at = upto
    return out


def utc_texts(slots: Sequence[int]) -> list[str]:
    """Each slot in UTC as ``isoformat`` writes it, without the offset."""
    return local_texts(slots, [Stretch(0, len(slots), 0, "")])


def offset_text(value: timedelta) -> str:
    """An offset in hours and minutes, ``+01:00`` (DST notes)."""
    minutes = int(value.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _suffix(offset: timedelta) -> str:
    """The offset as ``isoformat`` writes it after the time."""
    return datetime(2000, 1, 1, tzinfo=timezone(offset)).isoformat()[19:]
