"""``jobs simulate``: the jobs file played on a virtual clock, each slot with the decision the scheduler takes."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker_jobs.scheduling.config import JobDef
from broker_jobs.scheduling.simulate import render, simulate
from broker_jobs.scheduling.triggers import CronTrigger, IntervalTrigger, fire_micros, fire_times, next_fire
from tests.framework.scheduling.simulate_cases import CASES, Case
from tests.support import run_cli

T0 = datetime(2026, 6, 1, tzinfo=UTC)
EPOCH, MICROSECOND = datetime(1970, 1, 1, tzinfo=UTC), timedelta(microseconds=1)


def job(trigger, **fields) -> JobDef:
    return JobDef(id=fields.pop("id", "j"), actor="diagnostics", trigger=trigger, **fields)


def decisions(rows) -> list[str]:
    return [row.decision for row in rows]


def test_with_the_scheduler_up_every_slot_fires_on_time():
    rows = simulate([job(CronTrigger("0 * * * *"))], T0, T0 + timedelta(days=1))
    assert decisions(rows) == ["fired"] * 24
    assert all(row.decided_at == row.slot and row.detail is None for row in rows)


@pytest.mark.parametrize(("policy", "expected"), [
    # Ten one-minute slots fall in the outage (10:00 ... 10:09); the scheduler is back at 10:09:30, grace 3 min.
    ("skip", ["missed"] * 10),
    ("run_once", ["missed"] * 9 + ["caught_up"]),
    ("run_all", ["skipped_stale"] * 7 + ["caught_up"] * 3),
])
def test_slots_in_an_outage_are_decided_by_the_misfire_policy_when_the_scheduler_is_back(policy, expected):
    down = (T0.replace(hour=9, minute=59, second=30), T0.replace(hour=10, minute=9, second=30))
    rows = simulate([job(CronTrigger("* * * * *"), misfire=policy, misfire_grace=180.0)],
                    T0.replace(hour=9, minute=57), T0.replace(hour=10, minute=11), down=[down])
    assert decisions(rows) == ["fired", "fired", *expected, "fired", "fired"]
    late = [row for row in rows if row.decided_at == down[1]]
    assert len(late) == 10 and all("scheduler down from" in (row.detail or "") for row in late)


def test_runs_longer_than_the_interval_meet_the_overlap_policy():
    every_10_min = IntervalTrigger(600)
    skip = simulate([job(every_10_min, overlap="skip")], T0, T0 + timedelta(hours=1), duration=25 * 60)
    assert decisions(skip) == ["fired", "skipped_overlap", "skipped_overlap", "fired", "skipped_overlap",
                               "skipped_overlap"]
    allow = simulate([job(every_10_min, overlap="allow")], T0, T0 + timedelta(hours=1), duration=25 * 60)
    assert decisions(allow) == ["fired"] * 6


def test_a_paused_job_records_every_slot_paused_and_others_still_fire():
    rows = simulate([job(IntervalTrigger(3600), id="a"), job(IntervalTrigger(3600), id="b")], T0,
                    T0 + timedelta(hours=3), paused={"a"})
    assert Counter((row.job_id, row.decision) for row in rows) == {("a", "paused"): 3, ("b", "fired"): 3}


def test_daylight_saving_time_is_marked_on_the_slots_it_moves():
    berlin = CronTrigger("30 2 * * *", "Europe/Berlin")
    spring = simulate([job(berlin, timezone="Europe/Berlin")], datetime(2026, 3, 28, tzinfo=UTC),
                      datetime(2026, 3, 30, 12, tzinfo=UTC))
    shifted = [row for row in spring if row.slot == datetime(2026, 3, 29, 1, tzinfo=UTC)]
    assert len(shifted) == 1 and "end of the spring-forward gap" in shifted[0].detail
    assert shifted[0].local == "2026-03-29T03:00:00+02:00"
    twice = CronTrigger("30 2 * * *", "Europe/Berlin", fold="twice")
    autumn = simulate([job(twice, timezone="Europe/Berlin")], datetime(2026, 10, 24, tzinfo=UTC),
                      datetime(2026, 10, 26, tzinfo=UTC))
    second = [row for row in autumn if row.detail and "second pass" in row.detail]
    assert [row.slot for row in second] == [datetime(2026, 10, 25, 1, 30, tzinfo=UTC)]


SPRING, AUTUMN = ("2026-03-28T00:00:00", "2026-03-30T12:00:00"), ("2026-10-24T00:00:00", "2026-10-26T12:00:00")
GAP_END = "DST: 03:00 is the end of the spring-forward gap (the wall times skipped ran here once)"


@pytest.mark.parametrize(("gap", "fold", "span", "expected"), [
    ("shift", "once", SPRING, [("2026-03-28T02:30:00+01:00", "fired", None),
                               ("2026-03-29T03:00:00+02:00", "fired", GAP_END),
                               ("2026-03-30T02:30:00+02:00", "fired", None)]),
    ("skip", "once", SPRING, [("2026-03-28T02:30:00+01:00", "fired", None),
                              ("2026-03-30T02:30:00+02:00", "fired",
                               "DST: spring forward since the previous slot (+01:00 -> +02:00)")]),
    ("shift", "once", AUTUMN, [("2026-10-24T02:30:00+02:00", "fired", None),
                               ("2026-10-25T02:30:00+02:00", "fired", None),
                               ("2026-10-26T02:30:00+01:00", "fired",
                                "DST: fall back since the previous slot (+02:00 -> +01:00)")]),
    ("shift", "twice", AUTUMN, [("2026-10-24T02:30:00+02:00", "fired", None),
                                ("2026-10-25T02:30:00+02:00", "fired", None),
                                ("2026-10-25T02:30:00+01:00", "fired",
                                 "DST: second pass of 02:30 (fall back, fold=twice)"),
                                ("2026-10-26T02:30:00+01:00", "fired", None)]),
], ids=["gap shifted", "gap skipped", "fall back once", "fall back twice"])
def test_each_dst_policy_shows_in_the_slots_of_a_0230_berlin_job(gap, fold, span, expected):
    trigger = CronTrigger("30 2 * * *", "Europe/Berlin", gap=gap, fold=fold)
    start, end = (datetime.fromisoformat(t).replace(tzinfo=UTC) for t in span)
    rows = simulate([job(trigger, timezone="Europe/Berlin")], start, end)
    assert [(row.local, row.decision, row.detail) for row in rows] == expected


def test_a_slot_shifted_by_the_gap_and_missed_in_an_outage_carries_both_reasons():
    every_half_hour = job(CronTrigger("*/30 * * * *", "Europe/Berlin"), timezone="Europe/Berlin", misfire="run_once")
    down = (datetime(2026, 3, 29, 0, 40, tzinfo=UTC), datetime(2026, 3, 29, 1, 20, tzinfo=UTC))
    rows = simulate([every_half_hour], datetime(2026, 3, 29, 0, 15, tzinfo=UTC),
                    datetime(2026, 3, 29, 1, 45, tzinfo=UTC), down=[down])
    assert [(row.local, row.decision, row.decided_at) for row in rows] == [
        ("2026-03-29T01:30:00+01:00", "fired", datetime(2026, 3, 29, 0, 30, tzinfo=UTC)),
        ("2026-03-29T03:00:00+02:00", "caught_up", down[1]),
        ("2026-03-29T03:30:00+02:00", "fired", datetime(2026, 3, 29, 1, 30, tzinfo=UTC)),
    ]
    assert rows[1].detail == ("scheduler down from 2026-03-29T00:40:00Z to 2026-03-29T01:20:00Z; "
                              "DST: 03:00 is the end of the spring-forward gap (the wall times skipped ran here once)")


def test_slots_decided_when_an_outage_ends_sort_by_slot_then_job_among_the_slots_due_then():
    # a and b both miss 10:00-10:09 (run_all, grace 10 min) and both fire at 10:10, when the outage ends: the
    # caught-up slots are decided at 10:10 too, so all of them sort by slot, then job id, not job by job.
    jobs = [job(CronTrigger("* * * * *"), id="b", misfire="run_all", misfire_grace=600.0),
            job(IntervalTrigger(120), id="a", misfire="run_all", misfire_grace=600.0)]
    start, end = T0.replace(hour=9, minute=58), T0.replace(hour=10, minute=10)
    down = (T0.replace(hour=10), T0.replace(hour=10, minute=10))
    rows = simulate(jobs, start, end, down=[down])
    assert [(row.slot.minute, row.job_id, row.decided_at.minute) for row in rows] == [
        (59, "b", 59), (0, "a", 10), (0, "b", 10), (1, "b", 10), (2, "a", 10), (2, "b", 10), (3, "b", 10),
        (4, "a", 10), (4, "b", 10), (5, "b", 10), (6, "a", 10), (6, "b", 10), (7, "b", 10), (8, "a", 10),
        (8, "b", 10), (9, "b", 10), (10, "a", 10), (10, "b", 10)]
    printed = "".join(render(jobs, start, end, down=[down])).splitlines()
    assert printed[:-1] == [row.table_line() for row in rows]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_printed_output_is_byte_for_byte_the_recorded_one(case: Case):
    assert case.printed() == case.golden.read_bytes().decode()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_the_printed_lines_are_the_simulated_rows_formatted_one_by_one(case: Case):
    rows = simulate(case.jobs, case.start, case.end, down=case.down, duration=case.duration, paused=case.paused)
    printed = case.printed().splitlines()
    if case.as_json:
        assert printed[0] == "[" and printed[-1] == "]"
        assert [json.loads(line.removesuffix(",")) for line in printed[1:-1]] == [row.asdict() for row in rows]
    else:
        assert printed[:-1] == [row.table_line() for row in rows]
        counts = Counter(row.decision for row in rows)
        assert printed[-1] == f"{len(rows)} slot(s): " + (
            ", ".join(f"{n} {decision}" for decision, n in sorted(counts.items())) or "none")


def naive_fire_times(trigger, start, end):
    slots, slot = [], next_fire(trigger, start)
    while slot is not None and slot <= end:
        slots.append(slot)
        slot = next_fire(trigger, slot)
    return slots


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/St_Johns", "Pacific/Chatham"]
CRONS = ["*/5 * * * *", "30 2 * * *", "0,30 1-3 * * *", "7 * * * sun", "0 0 29 2 *", "*/20 * * * * *",
         "15 2 * * 1-5", "0 */2 1,15 * mon"]


@settings(max_examples=300, deadline=None)
@given(expression=st.sampled_from(CRONS), zone=st.sampled_from(ZONES), gap=st.sampled_from(["shift", "skip"]),
       fold=st.sampled_from(["once", "twice"]),
       start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       span=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_fire_times_lists_exactly_the_slots_next_fire_steps_through(expression, zone, gap, fold, start, span):
    trigger = CronTrigger(expression, zone, gap, fold)
    if expression.count(" ") == 5:  # a per-20-seconds schedule: two days are enough
        span = min(span, timedelta(days=2))
    expected = naive_fire_times(trigger, start, start + span)
    assert fire_times(trigger, start, start + span) == expected
    assert list(fire_micros(trigger, start, start + span)) == [(slot - EPOCH) // MICROSECOND for slot in expected]


@settings(max_examples=300, deadline=None)
@given(seconds=st.floats(min_value=0.001, max_value=3 * 86400), anchored=st.booleans(),
       start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
       periods=st.integers(min_value=0, max_value=300))
def test_interval_fire_times_are_the_grid_next_fire_steps_through(seconds, anchored, start, periods):
    trigger = IntervalTrigger(seconds, start=datetime(2026, 1, 1, tzinfo=UTC) if anchored else None)
    end = start + timedelta(seconds=seconds * periods)
    expected = naive_fire_times(trigger, start, end)
    assert fire_times(trigger, start, end) == expected
    assert list(fire_micros(trigger, start, end)) == [(slot - EPOCH) // MICROSECOND for slot in expected]


def test_the_command_plays_the_shipped_jobs_file_and_counts_every_decision():
    done = run_cli("jobs", "simulate", "--from", "2026-06-01T00:00:00Z", "--to", "2026-06-02T00:00:00Z",
                   "--down", "2026-06-01T10:00:00Z/2026-06-01T12:00:00Z")
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert "slot(s):" in summary and "fired" in summary and "missed" in summary
    as_json = run_cli("jobs", "simulate", "--from", "2026-06-01T00:00:00Z", "--to", "2026-06-02T00:00:00Z",
                      "--down", "2026-06-01T10:00:00Z/2026-06-01T12:00:00Z", "--json")
    rows = json.loads(as_json.stdout)
    assert int(summary.split()[0]) == len(rows) > 0
    assert {row["decision"] for row in rows} >= {"fired", "missed"}


@pytest.mark.parametrize(("args", "named"), [
    (["--down", "yesterday"], "--down"),
    (["--down", "2026-06-02T00:00:00Z/2026-06-01T00:00:00Z"], "--down"),
    (["--job", "no-such-job"], "--job"),
    (["--from", "2026-06-02T00:00:00Z", "--to", "2026-06-01T00:00:00Z"], "--to"),
    (["--from", "2026-06-01T00:00:00"], "--from"),
])
def test_a_bad_option_gets_one_line_naming_it_and_exit_2(args, named):
    done = run_cli("jobs", "simulate", *args)
    assert done.returncode == 2 and named in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""
