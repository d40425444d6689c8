"""Pure time math for schedules: when does a trigger fire next?

Three kinds of trigger: a cron expression on a local wall clock, a fixed
interval in real seconds, and a single date. Every function takes the
reference time as an argument and returns aware UTC datetimes; nothing here
reads a clock or does I/O, so the scheduler (and the tests) decide what "now"
is.

Cron and daylight saving time. A cron schedule is a set of local wall-clock
times; the offset from UTC changes at DST transitions, and between two
transitions wall time and UTC move together. :func:`next_fire` therefore
walks from one constant-offset stretch to the next: it finds the next
matching wall time, converts it with the current offset, and if a transition
comes first, crosses it and applies the trigger's policy:

* spring forward, the wall times ``[T + old, T + new)`` never happen:
  ``gap="shift"`` fires once at the transition instant ``T`` (the first valid
  instant after the gap) if any of them matched; ``gap="skip"`` drops them.
* fall back, the wall times ``[T + new, T + old)`` happen a second time:
  ``fold="once"`` fires only on their first pass, ``fold="twice"`` on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .cron import CronSpec, TriggerError, describe_cron, next_wall_match, parse_cron, wall_micros

__all__ = ["CronTrigger", "DateTrigger", "IntervalTrigger", "Trigger", "TriggerError", "describe", "fire_micros",
           "fire_times", "instant", "next_fire", "offset_changes", "parse_cron"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# How far apart offsets are sampled when looking for DST transitions. Since 1970 tzdata has no
# two offset changes less than ~7 days apart (Brazil 2000, Gaza rules), so sampling every 3 days
# cannot step over a summer time and back.
_PROBE = timedelta(days=3)
# Longer than any DST shift (tzdata has none over two hours): a start this close after a transition may sit in
# the wall times it repeats.
_NEAR = timedelta(hours=3)


@lru_cache(maxsize=1024)
def _zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        raise TriggerError(f"unknown timezone {key!r}", "timezone") from None


# Schedules are parsed once, not on every evaluation of 10,000 of them.
_parse = lru_cache(maxsize=16384)(parse_cron)


@dataclass(frozen=True)
class CronTrigger:
    """Fire at the local wall-clock times a cron expression matches.

    Parameters:
      expression: A crontab(5) expression, see :func:`parse_cron`.
      timezone: The IANA zone whose wall clock the expression reads.
      gap: At spring forward, ``shift`` fires skipped times once at the end
        of the gap; ``skip`` drops them.
      fold: At fall back, ``once`` fires repeated times on their first
        pass only; ``twice`` fires them on both.
    """

    expression: str
    timezone: str = "UTC"
    gap: Literal["shift", "skip"] = "shift"
    fold: Literal["once", "twice"] = "once"

    def __post_init__(self) -> None:
        # Fail when the schedule is built, not when it first comes due.
        _parse(self.expression)
        _zone(self.timezone)
        if self.gap not in ("shift", "skip"):
            raise TriggerError(f"bad gap policy {self.gap!r}: use 'shift' or 'skip'", "gap")
        if self.fold not in ("once", "twice"):
            raise TriggerError(f"bad fold policy {self.fold!r}: use 'once' or 'twice'", "fold")


@dataclass(frozen=True)
class IntervalTrigger:
    """Fire every ``seconds`` of real time, on slots ``anchor + k * seconds``.

    The anchor is ``start``, or the Unix epoch when there is none, so that
    every process computes the same slots whenever it starts.

    Parameters:
      seconds: The period, in real (UTC) seconds; microsecond precision.
      timezone: The zone naive ``start``/``end`` are read in.
      start: The first slot; None anchors on the epoch.
      end: The last instant a slot may fall on; None for never.
    """

    seconds: float
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        if not self.seconds > 0 or self.seconds == float("inf") or round(self.seconds * 1e6) < 1:
            raise TriggerError(f"bad interval {self.seconds!r}: seconds must be positive and finite", "seconds")
        zone = _zone(self.timezone)
        if self.start is not None and self.end is not None and _utc(self.end, zone) < _utc(self.start, zone):
            raise TriggerError(f"interval ends ({self.end}) before it starts ({self.start})", "end")


@dataclass(frozen=True)
class DateTrigger:
    """Fire once, at ``at``.

    Parameters:
      at: The instant; a naive value is read in ``timezone``.
      timezone: The zone a naive ``at`` is read in, and shown in.
    """

    at: datetime
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        _zone(self.timezone)


Trigger: TypeAlias = CronTrigger | IntervalTrigger | DateTrigger


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first slot of ``trigger`` strictly after ``after``.

    Parameters:
      trigger: The schedule.
      after: The reference instant (timezone-aware), usually now or the
        last slot fired.

    Returns:
      An aware UTC datetime, or None when the trigger has no slot left.

    Raises:
      TriggerError: if ``after`` is naive.
    """
    after = _aware(after, "after")
    if isinstance(trigger, CronTrigger):
        return _next_cron(trigger, after)
    if isinstance(trigger, IntervalTrigger):
        return _next_interval(trigger, after)
    if isinstance(trigger, DateTrigger):
        at = _utc(trigger.at, _zone(trigger.timezone))
        return at if at > after else None
    raise TypeError(f"not a trigger: {trigger!r}")


def min_gap(trigger: Trigger) -> float:
    """Seconds that surely separate two consecutive slots of ``trigger`` (a lower bound).

    Cron slots are distinct whole-second instants (wall times on whole seconds, zone
    offsets in whole seconds, a repeated or skipped hour included); interval slots are
    ``seconds`` apart, give or take a microsecond of rounding; a date has one slot.
    A millisecond is kept as margin.
    """
    if isinstance(trigger, CronTrigger):
        return 0.999
    if isinstance(trigger, IntervalTrigger):
        return max(0.0, trigger.seconds - 0.001)
    if isinstance(trigger, DateTrigger):
        return float("inf")
    raise TypeError(f"not a trigger: {trigger!r}")


def fire_times(trigger: Trigger, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
    """The slots of ``trigger`` in ``(start, end]``, in order.

    Parameters:
      trigger: The schedule.
      start: Exclusive lower bound (timezone-aware).
      end: Inclusive upper bound (timezone-aware).
      limit: At most this many slots; None for all of them.

    Returns:
      Aware UTC datetimes.
    """
    _aware(end, "end")
    if limit is not None and limit < 0:
        raise TriggerError(f"bad limit {limit!r}: must be >= 0", "limit")
    if limit is None:
        return [_EPOCH + micros * _MICROSECOND for micros in fire_micros(trigger, start, end)]
    slots: list[datetime] = []
    slot = next_fire(trigger, start)
    while slot is not None and slot <= end and len(slots) < limit:
        slots.append(slot)
        slot = next_fire(trigger, slot)
    return slots


def fire_micros(trigger: Trigger, start: datetime, end: datetime) -> Sequence[int]:
    """:func:`fire_times` as microseconds since the Unix epoch, computed without a datetime per slot.

    Interval slots are a grid, so they are a ``range``; cron slots are, between two DST transitions, the wall
    matches of the stretch shifted by its offset (:func:`wall_micros`), and each transition is crossed slot by
    slot with :func:`next_fire`, which applies the gap and fold policies.
    """
    start, end = _aware(start, "start").astimezone(UTC), _aware(end, "end").astimezone(UTC)
    if isinstance(trigger, CronTrigger):
        return _cron_micros(trigger, start, end)
    if isinstance(trigger, IntervalTrigger):
        return _interval_micros(trigger, start, end)
    slot = next_fire(trigger, start)
    return [] if slot is None or slot > end else [_micros(slot)]


def _micros(instant: datetime) -> int:
    return (instant - _EPOCH) // _MICROSECOND


def _interval_micros(trigger: IntervalTrigger, start: datetime, end: datetime) -> range:
    first = next_fire(trigger, start)
    if first is None:
        return range(0)
    last = end if trigger.end is None else min(end, _utc(trigger.end, _zone(trigger.timezone)))
    return range(_micros(first), _micros(last) + 1, round(trigger.seconds * 1_000_000))


def _cron_micros(trigger: CronTrigger, start: datetime, end: datetime) -> list[int]:
    spec, zone = _parse(trigger.expression), _zone(trigger.timezone)
    slots: list[int] = []
    cursor = start
    # A start just after a transition (inside a repeated hour, say) is crossed slot by slot too.
    crossing = _transition_in(zone, start - _NEAR, start)
    while True:
        if crossing is not None:
            # Across the transition one slot at a time, until past the wall times it skips or repeats.
            transition, new_offset = crossing
            past = transition + abs(new_offset - _offset(zone, transition - _SECOND)) + _SECOND
            while cursor < past:
                slot = next_fire(trigger, cursor)
                if slot is None or slot > end:
                    return slots
                slots.append(_micros(slot))
                cursor = slot
        if cursor >= end:
            return slots
        crossing = _transition_in(zone, cursor, end)
        stop = end if crossing is None else crossing[0] - _SECOND
        if stop > cursor:
            offset = _offset(zone, cursor) // _MICROSECOND
            slots += wall_micros(spec, _micros(cursor) + offset, _micros(stop) + offset, -offset)
            cursor = stop
        if crossing is None:
            return slots


def describe(trigger: Trigger) -> str:
    """The schedule in words, for logs, the CLI and the dashboard.

    Parameters:
      trigger: The schedule.

    Returns:
      For example ``every 5 minutes``, ``at 03:00 every day (Europe/Paris)``,
      ``cron 0 */2 * * * (UTC)`` or ``once at 2026-01-01T10:00:00+00:00``.
    """
    if isinstance(trigger, CronTrigger):
        spec = _parse(trigger.expression)
        # The DST policies are named only when they differ from the defaults.
        where = trigger.timezone + (f", gap={trigger.gap}" if trigger.gap != "shift" else "")
        where += f", fold={trigger.fold}" if trigger.fold != "once" else ""
        return f"{describe_cron(spec) or 'cron ' + spec.expression} ({where})"
    zone = _zone(trigger.timezone)
    if isinstance(trigger, DateTrigger):
        return f"once at {_utc(trigger.at, zone).astimezone(zone).isoformat()}"
    words = f"every {_duration(trigger.seconds)}"
    if trigger.start is not None:
        words += f" from {_utc(trigger.start, zone).astimezone(zone).isoformat()}"
    if trigger.end is not None:
        words += f" until {_utc(trigger.end, zone).astimezone(zone).isoformat()}"
    return words


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds:g} seconds"


def offset_changes(timezone: str, start: datetime, end: datetime) -> list[tuple[datetime, timedelta, timedelta]]:
    """The UTC offset changes (DST transitions) of ``timezone`` in ``(start, end]``.

    Returns:
      ``(instant, old offset, new offset)`` for each, in order; the instant is aware UTC.
    """
    zone = _zone(timezone)
    found: list[tuple[datetime, timedelta, timedelta]] = []
    after, until = _aware(start, "start").astimezone(UTC), _aware(end, "end").astimezone(UTC)
    while (change := _transition_in(zone, after, until)) is not None:
        instant, new = change
        found.append((instant, _offset(zone, instant - _SECOND), new))
        after = instant
    return found


def _aware(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise TriggerError(f"{name!r} must be a timezone-aware datetime, got {value!r}", name)
    return value


def _offset(zone: tzinfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _wall(instant: datetime, offset: timedelta) -> datetime:
    """The naive local time of ``instant`` in a stretch with that UTC offset."""
    return (instant + offset).replace(tzinfo=None)


@lru_cache(maxsize=4096)
def _transitions(zone: tzinfo, year: int) -> tuple[tuple[datetime, timedelta], ...]:
    """The instants in ``(1 Jan year, 1 Jan year + 1]`` UTC where ``zone``'s offset changes, with the new offset.

    zoneinfo does not list its transitions, so they are found once per zone and year by sampling
    the offset and bisecting on the epoch second (tzdata transitions fall on whole seconds).
    """
    if not MINYEAR < year < MAXYEAR:
        return ()  # no room to sample past the ends of datetime; nothing schedules there
    low, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    offset, found = _offset(zone, low), []
    while low < end:
        high = min(low + _PROBE, end)
        if _offset(zone, high) == offset:
            low = high
            continue
        low_s, high_s = (low - _EPOCH) // _SECOND, (high - _EPOCH) // _SECOND
        while high_s - low_s > 1:
            middle = (low_s + high_s) // 2
            if _offset(zone, _EPOCH + middle * _SECOND) == offset:
                low_s = middle
            else:
                high_s = middle
        # Resume from the transition itself, so a second one in the same window is not lost.
        low = _EPOCH + high_s * _SECOND
        offset = _offset(zone, low)
        found.append((low, offset))
    return tuple(found)


def _transition_in(zone: tzinfo, after: datetime, until: datetime) -> tuple[datetime, timedelta] | None:
    """The first offset change in ``(after, until]``, with the new offset, or None."""
    for year in range(after.year, until.year + 1):
        for instant, offset in _transitions(zone, year):
            if instant > until:
                return None
            if instant > after:
                return instant, offset
    return None


def instant(value: datetime, timezone: str) -> datetime:
    """``value`` in UTC; a naive value is a wall time in ``timezone``, resolved as the triggers resolve it."""
    return _utc(value, _zone(timezone))


def _utc(value: datetime, zone: tzinfo) -> datetime:
    """``value`` in UTC; a naive value is a wall time in ``zone``, resolved like a cron slot."""
    if value.tzinfo is not None:
        return _aware(value, "datetime").astimezone(UTC)
    first = value.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == value:
        return first.astimezone(UTC)  # exists (if repeated, fold=0 is its first occurrence)
    # Inside a spring-forward gap: fold=1 reads it with the later offset, landing before the gap,
    # fold=0 with the earlier one, landing after it; the transition lies between.
    before, later = value.replace(tzinfo=zone, fold=1).astimezone(UTC), first.astimezone(UTC)
    transition = _transition_in(zone, before, later)
    return later if transition is None else transition[0]


def _next_cron(trigger: CronTrigger, after: datetime) -> datetime | None:
    spec: CronSpec = _parse(trigger.expression)
    zone = _zone(trigger.timezone)
    try:
        local = after.astimezone(zone)
    except OverflowError:  # within a day of datetime.max: nothing can come after
        return None
    offset = local.utcoffset()
    assert offset is not None
    instant, wall, inclusive = after.astimezone(UTC), local.replace(tzinfo=None), False
    floor: datetime | None = None  # under fold="once", wall times below this already fired
    if local.fold and trigger.fold == "once":
        # `after` is on the second pass of a fall-back: find where that repeat ends.
        first_pass = local.replace(fold=0)
        earlier = first_pass.utcoffset()
        assert earlier is not None
        repeat_end = _transition_in(zone, first_pass.astimezone(UTC), instant)
        assert repeat_end is not None
        floor = _wall(repeat_end[0], earlier)
    while True:
        if floor is not None and floor > wall:
            match = next_wall_match(spec, floor, inclusive=True)
        else:
            match = next_wall_match(spec, wall, inclusive=inclusive)
        if match is None:
            return None
        try:
            candidate = match.replace(tzinfo=UTC) - offset
        except OverflowError:
            return None
        crossing = _transition_in(zone, instant, candidate)
        if crossing is None:
            return candidate
        transition, new_offset = crossing
        if new_offset > offset:
            floor = None
            if trigger.gap == "shift":
                missed = next_wall_match(spec, _wall(transition, offset), inclusive=True)
                if missed is not None and missed < _wall(transition, new_offset):
                    return transition
        else:
            floor = _wall(transition, offset) if trigger.fold == "once" else None
        instant, offset, inclusive = transition, new_offset, True
        wall = _wall(transition, new_offset)


def _next_interval(trigger: IntervalTrigger, after: datetime) -> datetime | None:
    zone = _zone(trigger.timezone)
    anchor = _EPOCH if trigger.start is None else _utc(trigger.start, zone)
    # Integer microseconds: float seconds would drift off the shared slot grid.
    period = round(trigger.seconds * 1_000_000)
    slot = (after - anchor) // _MICROSECOND // period + 1
    if trigger.start is not None:
        slot = max(slot, 0)
    try:
        candidate = anchor + slot * period * _MICROSECOND
    except OverflowError:
        return None
    if trigger.end is not None and candidate > _utc(trigger.end, zone):
        return None
    return candidate
