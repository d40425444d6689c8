"""Jobs and spans that ``jobs simulate``'s golden outputs were recorded with (``golden/simulate-*``).

The outputs were first printed by the implementation that built every row as an object, formatted it with
``isoformat`` and sorted the lot; the one that keeps slots as integers must print the same bytes.  The jobs cover
each DST case (a spring-forward gap shifted or skipped, a repeated hour fired once or twice, half-hour shifts,
offsets of -03:30), grids off the whole second, an interval with a start and an end, a date, a disabled job.

After a deliberate change of the output, record them again (and read the diff):
``python -m tests.framework.scheduling.simulate_cases``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from broker_jobs.scheduling.config import JobDef
from broker_jobs.scheduling.simulate import render
from broker_jobs.scheduling.triggers import CronTrigger, DateTrigger, IntervalTrigger, Trigger


def job(job_id: str, trigger: Trigger, **fields: object) -> JobDef:
    """A job of the test jobs file: ``fields`` as :class:`JobDef` takes them."""
    return JobDef(id=job_id, actor="diagnostics", trigger=trigger, timezone=trigger.timezone, **fields)


def utc(text: str) -> datetime:
    """An aware UTC datetime from ISO text without an offset."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: Infrequent jobs whose slots sit on the DST transitions of 2026 (EU 29 Mar and 25 Oct, US and St John's
#: 8 Mar and 1 Nov, Lord Howe's half hour 5 Apr and 4 Oct).
DST_JOBS = [
    job("berlin-0230", CronTrigger("30 2 * * *", "Europe/Berlin")),
    job("berlin-skip-twice", CronTrigger("30 2 * * *", "Europe/Berlin", gap="skip", fold="twice"),
        misfire="run_all", misfire_grace=600.0),
    job("ny-sunday-night", CronTrigger("*/20 1-3 * * sun", "America/New_York", fold="twice"), overlap="allow"),
    job("lord-howe", CronTrigger("0,30 1-2 * * sun", "Australia/Lord_Howe"), misfire="skip"),
    job("st-johns", CronTrigger("15 1-3 * * sun", "America/St_Johns"), overlap="buffer_one"),
    job("interval-odd", IntervalTrigger(50400.25), overlap="replace"),
    job("interval-12h", IntervalTrigger(43200, "Europe/Berlin", start=datetime(2026, 3, 1, 0, 0, 30),
                                        end=datetime(2026, 11, 1))),
    job("once", DateTrigger(datetime(2026, 3, 29, 2, 30), "Europe/Berlin")),
    job("disabled", CronTrigger("* * * * *"), enabled=False),
]

#: Frequent jobs for the misfire, overlap and pause cases.
BUSY_JOBS = [
    *DST_JOBS[:3],
    job("berlin-10min", CronTrigger("*/10 * * * *", "Europe/Berlin"), misfire="run_once"),
    job("every-7min", IntervalTrigger(420), misfire="run_all", misfire_grace=900.0),
    job("every-25min-allow", IntervalTrigger(1500), overlap="allow", misfire="skip"),
]


@dataclass(frozen=True)
class Case:
    """One recorded run: the jobs, the span, the options, and whether the output is ``--json``."""

    name: str
    jobs: list[JobDef]
    start: datetime
    end: datetime
    down: list[tuple[datetime, datetime]] = field(default_factory=list)
    duration: float = 0.0
    paused: frozenset[str] = frozenset()
    as_json: bool = False

    @property
    def golden(self) -> Path:
        """The recorded output."""
        return GOLDEN / f"simulate-{self.name}.{'json' if self.as_json else 'txt'}"

    def printed(self) -> str:
        """What ``jobs simulate`` prints for this case."""
        return "".join(render(self.jobs, self.start, self.end, down=self.down, duration=self.duration,
                              paused=self.paused, as_json=self.as_json))


GOLDEN = Path(__file__).parent / "golden"


CASES = [
    Case("spring", DST_JOBS, utc("2026-03-01T00:00:00"), utc("2026-04-10T00:00:00")),
    Case("autumn", DST_JOBS, utc("2026-09-28T00:00:00"), utc("2026-11-05T00:00:00")),
    Case("autumn-json", DST_JOBS, utc("2026-10-24T00:00:00"), utc("2026-10-26T00:00:00"), as_json=True),
    Case("outages", BUSY_JOBS, utc("2026-03-28T18:00:00"), utc("2026-03-29T12:00:00"),
         down=[(utc("2026-03-28T23:30:00"), utc("2026-03-29T01:40:00")),
               (utc("2026-03-29T10:00:00"), utc("2026-03-29T10:00:30"))]),
    Case("outages-json", BUSY_JOBS, utc("2026-03-28T22:00:00"), utc("2026-03-29T03:00:00"),
         down=[(utc("2026-03-28T23:30:00"), utc("2026-03-29T01:40:00"))], as_json=True),
    Case("overlap-paused", BUSY_JOBS, utc("2026-10-24T20:00:00"), utc("2026-10-25T08:00:00"),
         down=[(utc("2026-10-25T00:50:00"), utc("2026-10-25T01:20:00"))], duration=1500.0,
         paused=frozenset({"berlin-0230"})),
    Case("nothing", DST_JOBS, utc("2026-06-01T00:00:00"), utc("2026-06-01T00:00:01")),
]


if __name__ == "__main__":
    for case in CASES:
        case.golden.write_bytes(case.printed().encode())
        print(case.golden)
