"""Slots kept as integers print as ``datetime.isoformat`` prints them, in any zone, offset or microsecond."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from broker_jobs.scheduling.wall_text import as_datetime, as_micros, local_texts, stretches, utc_texts

# Offsets with seconds before 1937 (Amsterdam +00:19:32) and 1972 (Monrovia -00:44:30), half hours, 45 minutes,
# half-hour DST shifts, negative offsets.
ZONES = ["UTC", "Europe/Berlin", "Europe/Amsterdam", "Africa/Monrovia", "Asia/Kolkata", "Pacific/Chatham",
         "Australia/Lord_Howe", "America/St_Johns", "America/New_York"]
INSTANTS = st.lists(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2060, 1, 1),
                                 timezones=st.just(UTC)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(zone=st.sampled_from(ZONES), instants=INSTANTS)
def test_local_texts_are_what_isoformat_writes_on_the_zones_wall_clock(zone, instants):
    slots = sorted({as_micros(instant) for instant in instants})
    clock = ZoneInfo(zone)
    expected = [as_datetime(slot).astimezone(clock).isoformat() for slot in slots]
    assert local_texts(slots, stretches(zone, clock, slots)) == expected
    padded = local_texts(slots, stretches(zone, clock, slots), width=25, tail="  job")
    assert padded == [f"{text:25}  job" for text in expected]


@settings(max_examples=100, deadline=None)
@given(instants=INSTANTS)
def test_utc_texts_are_isoformat_without_the_offset(instants):
    slots = sorted({as_micros(instant) for instant in instants})
    assert utc_texts(slots) == [as_datetime(slot).isoformat().removesuffix("+00:00") for slot in slots]


def test_an_instant_survives_the_round_trip_through_microseconds():
    instant = datetime(2026, 3, 29, 1, 0, 0, 250, tzinfo=UTC)
    assert as_datetime(as_micros(instant)) == instant
    assert as_micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
