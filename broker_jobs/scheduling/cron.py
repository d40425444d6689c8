"""Crontab(5) expressions: parsing, and matching against wall-clock times.

The semantics are Vixie cron's, not APScheduler's: weekday 0 and 7 are both
Sunday, and when both day fields are restricted a day matches if *either*
does. Nothing here knows about time zones: :func:`next_wall_match` works on
naive local times, and :mod:`broker_jobs.scheduling.triggers` maps those to
instants and applies the DST policies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import MAXYEAR, date, datetime, timedelta

from ..errors import ScheduleError

FIELDS = ("second", "minute", "hour", "day_of_month", "month", "day_of_week")
_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day_of_month": (1, 31),
    "month": (1, 12),
    # 7 is accepted as Sunday, like 0; it is folded onto 0 after parsing.
    "day_of_week": (0, 7),
}
MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES = {
    "month": {name: number for number, name in enumerate(MONTH_NAMES, start=1)},
    "day_of_week": {name: number for number, name in enumerate(WEEKDAY_NAMES)},
}
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Longest each month can be in any year, so that "30 2" (never) is told apart from "29 2" (leap years).
_LONGEST_MONTH = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_SECOND = timedelta(seconds=1)
# Spelled out rather than strftime'd: %A and %B follow the process locale.
_DAY_NAMES = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")
_MONTH_WORDS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")


class TriggerError(ScheduleError, ValueError):
    """A schedule that cannot be parsed or computed.

    A :class:`ValueError` so that pydantic validators report it as a field
    error, and a :class:`~broker_jobs.errors.ScheduleError` so that the CLI
    prints it as one line.

    Parameters:
      message: What is wrong, naming the field and the offending text.
      field: The cron field (``minute``, ``day_of_week``...) or trigger
        attribute at fault, when there is one.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron expression: the values each field allows.

    Parameters:
      expression: The expression as written (whitespace normalised).
      seconds: Allowed seconds (``{0}`` when the expression has 5 fields).
      minutes: Allowed minutes.
      hours: Allowed hours.
      days: Allowed days of the month.
      months: Allowed months, 1 to 12.
      weekdays: Allowed weekdays, 0 (Sunday) to 6 (Saturday).
      day_or: Both day fields are restricted, so a day matches if either
        does (the Vixie rule); otherwise both must match.
    """

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    day_or: bool
    # Lookup tables: _next_x[v] is the smallest allowed value >= v, or -1; one slot past the top
    # of the range is always -1 so carrying (minute 60, hour 24...) needs no special case.
    _next_second: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_minute: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_hour: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_day: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _next_month: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _weekday_mask: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name, values, top in (
            ("_next_second", self.seconds, 60),
            ("_next_minute", self.minutes, 60),
            ("_next_hour", self.hours, 24),
            ("_next_day", self.days, 32),
            ("_next_month", self.months, 13),
        ):
            object.__setattr__(self, name, _next_table(values, top))
        object.__setattr__(self, "_weekday_mask", sum(1 << day for day in self.weekdays))


def _next_table(values: frozenset[int], top: int) -> tuple[int, ...]:
    table = [-1] * (top + 1)
    following = -1
    for value in range(top - 1, -1, -1):
        if value in values:
            following = value
        table[value] = following
    return tuple(table)


def _bad(name: str, detail: str) -> TriggerError:
    return TriggerError(f"bad cron field {name!r}: {detail}", name)


def _value(name: str, token: str, item: str) -> int:
    """One number or name of field ``name``, range-checked."""
    if not token:
        raise _bad(name, f"incomplete range in {item!r}")
    if token.isascii() and token.isdigit():
        number = int(token)
    elif token.lower() in _NAMES.get(name, {}):
        number = _NAMES[name][token.lower()]
    else:
        hint = {"month": " or a month name (jan..dec)", "day_of_week": " or a weekday name (sun..sat)"}
        raise _bad(name, f"{token!r} is not a number{hint.get(name, '')}")
    low, high = _BOUNDS[name]
    if not low <= number <= high:
        raise _bad(name, f"{token!r} out of range {low}-{high}")
    return number


def _parse_field(name: str, text: str) -> frozenset[int]:
    low, high = _BOUNDS[name]
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _bad(name, f"empty list item in {text!r}")
        body, slash, step_text = item.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()):
                raise _bad(name, f"step {step_text!r} in {item!r} is not a number")
            step = int(step_text)
            if step == 0:
                raise _bad(name, f"step 0 in {item!r}")
        if body == "*":
            start, end = low, high
        elif "-" in body:
            first, _, last = body.partition("-")
            start, end = _value(name, first, item), _value(name, last, item)
            if name == "day_of_week" and end == 0 and start > 0:
                end = 7  # 'fri-sun' means Friday to Sunday, not a backwards range
            if start > end:
                raise _bad(name, f"range {body!r} runs backwards")
        else:
            start = _value(name, body, item)
            # 'N/step' (a common extension) runs from N to the top of the field.
            end = high if slash else start
        values.update(range(start, end + 1, step))
    if name == "day_of_week":
        values = {value % 7 for value in values}
    return frozenset(values)


def parse_cron(expression: str) -> CronSpec:
    """Parse a crontab(5) expression.

    Five fields ``minute hour day_of_month month day_of_week`` (second 0), or
    six with a leading ``second``; ``*``, ranges, steps, lists, month and
    weekday names, and the ``@hourly``...``@yearly`` aliases.

    Parameters:
      expression: The cron expression.

    Returns:
      The allowed values of each field.

    Raises:
      TriggerError: naming the field and the text at fault.
    """
    text = " ".join(str(expression).split())
    if not text:
        raise TriggerError("empty cron expression")
    fields = ALIASES.get(text.lower(), text).split()
    if text.startswith("@") and text.lower() not in ALIASES:
        raise TriggerError(f"unknown cron alias {text!r}; use one of {', '.join(ALIASES)}")
    if len(fields) == 5:
        fields.insert(0, "0")
    elif len(fields) != 6:
        raise TriggerError(
            f"bad cron expression {text!r}: expected 5 fields (minute hour day_of_month month day_of_week) "
            f"or 6 with a leading second, got {len(fields)}"
        )
    second, minute, hour, dom, month, dow = (
        _parse_field(name, part) for name, part in zip(FIELDS, fields, strict=True)
    )
    # Vixie cron calls a day field unrestricted when it starts with '*', so '*/2' keeps the AND rule.
    day_or = not fields[3].startswith("*") and not fields[5].startswith("*")
    if not day_or and not any(day <= _LONGEST_MONTH[m] for m in month for day in dom):
        months = ", ".join(MONTH_NAMES[m - 1] for m in sorted(month))
        raise _bad("day_of_month", f"day {min(dom)} never occurs in {months}")
    return CronSpec(text, second, minute, hour, dom, month, dow, day_or)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return _LONGEST_MONTH[month]


def next_wall_match(spec: CronSpec, start: datetime, inclusive: bool = False) -> datetime | None:
    """The first wall-clock time matching ``spec`` after ``start``.

    Works field by field from the month down, so a non-matching month, day,
    hour or minute is skipped whole instead of being stepped through.

    Parameters:
      spec: The parsed expression.
      start: A naive local time.
      inclusive: Whether ``start`` itself may be returned.

    Returns:
      A naive time with whole seconds, or None past year 9999.
    """
    if start.tzinfo is not None:
        raise TriggerError("next_wall_match takes a naive local time")
    if not inclusive or start.microsecond:
        if start >= datetime.max.replace(microsecond=0):
            return None
        start = start.replace(microsecond=0) + _SECOND
    year, month, day, hour, minute, second = (
        start.year, start.month, start.day, start.hour, start.minute, start.second
    )
    next_month, next_day, next_hour = spec._next_month, spec._next_day, spec._next_hour
    next_minute, next_second = spec._next_minute, spec._next_second
    every_weekday = spec._weekday_mask == 0b1111111
    while True:
        if month > 12:
            year, month = year + 1, 1
        if year > MAXYEAR:
            return None
        found = next_month[month]
        if found < 0:
            year, month, day, hour, minute, second = year + 1, 1, 1, 0, 0, 0
            continue
        if found != month:
            month, day, hour, minute, second = found, 1, 0, 0, 0
        length = _days_in_month(year, month)
        if every_weekday and not spec.day_or:
            # Only the day of the month decides: jump straight to the next allowed one.
            found = next_day[day] if day <= length else -1
        else:
            found = day
            weekday = (date(year, month, day).weekday() + 1) % 7 if day <= length else 0
            while found <= length:
                dom = found in spec.days
                dow = bool(spec._weekday_mask >> weekday & 1)
                if (dom or dow) if spec.day_or else (dom and dow):
                    break
                found, weekday = found + 1, (weekday + 1) % 7
        if found < 0 or found > length:
            month, day, hour, minute, second = month + 1, 1, 0, 0, 0
            continue
        if found != day:
            day, hour, minute, second = found, 0, 0, 0
        found = next_hour[hour]
        if found < 0:
            day, hour, minute, second = day + 1, 0, 0, 0
            continue
        if found != hour:
            hour, minute, second = found, 0, 0
        found = next_minute[minute]
        if found < 0:
            hour, minute, second = hour + 1, 0, 0
            continue
        if found != minute:
            minute, second = found, 0
        found = next_second[second]
        if found < 0:
            minute, second = minute + 1, 0
            continue
        return datetime(year, month, day, hour, minute, found)


#: Microseconds in a second and in a day; ``date.toordinal`` of 1970-01-01 (day 0 of the epoch counts below).
MICROS = 1_000_000
DAY_MICROS = 86_400 * MICROS
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def wall_micros(spec: CronSpec, after: int, until: int, shift: int = 0) -> list[int]:
    """Every wall-clock time matching ``spec`` in ``(after, until]``, in order, each plus ``shift``.

    Wall times are counted in microseconds from 1970-01-01 00:00 on the same wall clock (a naive local
    time read as if it were UTC), so a caller in a stretch of constant UTC offset ``o`` passes ``shift=-o``
    and gets instants.  The same times as calling :func:`next_wall_match` from ``after`` until past
    ``until``, enumerated day by day (a day's matching times are computed once): a long span costs one
    addition per match.
    """
    times = _micros_of_day(spec)
    out: list[int] = []
    first, last = after // DAY_MICROS, until // DAY_MICROS
    every_weekday = spec._weekday_mask == 0b1111111
    for number in range(first, min(last, date.max.toordinal() - EPOCH_ORDINAL) + 1):
        day = date.fromordinal(number + EPOCH_ORDINAL)
        if day.month not in spec.months:
            continue
        dom = day.day in spec.days
        if every_weekday and not spec.day_or:
            matches = dom
        else:
            dow = bool(spec._weekday_mask >> ((day.weekday() + 1) % 7) & 1)
            matches = (dom or dow) if spec.day_or else (dom and dow)
        if not matches:
            continue
        midnight = number * DAY_MICROS
        if number in (first, last):
            out += [wall + shift for wall in (midnight + offset for offset in times) if after < wall <= until]
        else:
            base = midnight + shift
            out += [base + offset for offset in times]
    return out


@functools.lru_cache(maxsize=256)
def _micros_of_day(spec: CronSpec) -> tuple[int, ...]:
    """The matching times of one matching day, as microseconds from midnight, in order."""
    return tuple(((h * 60 + m) * 60 + s) * MICROS
                 for h in sorted(spec.hours) for m in sorted(spec.minutes) for s in sorted(spec.seconds))


def describe_cron(spec: CronSpec) -> str | None:
    """Words for the common shapes (daily, weekly, monthly, yearly at a fixed time), else None.

    Parameters:
      spec: The parsed expression.
    """
    if not (len(spec.seconds) == len(spec.minutes) == len(spec.hours) == 1):
        return None
    (second,), (minute,), (hour,) = spec.seconds, spec.minutes, spec.hours
    at = f"at {hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")
    every_day, every_month = len(spec.days) == 31, len(spec.months) == 12
    every_weekday = len(spec.weekdays) == 7
    if spec.day_or:
        return None
    if every_day and every_month and every_weekday:
        return f"{at} every day"
    if every_day and every_month:
        return f"{at} every {_weekday_words(spec.weekdays)}"
    if len(spec.days) == 1 and every_weekday:
        (day,) = spec.days
        if every_month:
            return f"{at} on day {day} of every month"
        if len(spec.months) == 1:
            (month,) = spec.months
            return f"{at} on {_MONTH_WORDS[month - 1]} {day} every year"
    return None


def _weekday_words(weekdays: frozenset[int]) -> str:
    # Monday first, so that 'mon-fri' reads "Monday to Friday" and 'sat,sun' "Saturday and Sunday".
    runs: list[list[str]] = []
    previous = -2
    for position, day in enumerate((1, 2, 3, 4, 5, 6, 0)):
        if day in weekdays:
            if position == previous + 1:
                runs[-1].append(_DAY_NAMES[day])
            else:
                runs.append([_DAY_NAMES[day]])
            previous = position
    words = [word for run in runs for word in ([f"{run[0]} to {run[-1]}"] if len(run) > 2 else run)]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
