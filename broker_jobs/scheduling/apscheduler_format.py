"""Jobs written the way an APScheduler application writes them, read as jobs of the jobs file.

An entry with ``job_id`` (a JSON config such as ``{"jobs": [{"job_id": "nightly", "type": "cron",
"hour": 2, "minute": 0, "day_of_week": "sun", "config": {...}}]}``) becomes one of our entries:

* ``job_id`` -> ``id``; ``config`` -> the job's ``kwargs``; ``actor`` (optional) -> ``actor``, else the
  application's pipeline job (:func:`broker_jobs.registry.pipeline`, the built-in ETL pipeline).
* ``type: cron`` with APScheduler's fields (``second minute hour day month day_of_week``), read with
  APScheduler's meaning: a field left out is ``*`` above the smallest field given and its minimum below
  it; ``day_of_week`` numbers count from **0 = Monday** (names and ranges as APScheduler reads them).
  ``cron_expression`` is a crontab line (0 = Sunday, as crontab(5) and the seeds' comments mean it).
* ``type: interval`` with ``weeks days hours minutes seconds`` (summed) and ``start_date``/``end_date``.
* ``type: date`` with ``run_date``.
* ``timezone``, ``priority``, ``queue``, ``misfire_grace_time`` (-> ``misfire_grace``), ``coalesce``
  (``false`` -> ``misfire: run_all``), ``max_instances`` (> 1 -> ``overlap: allow``), ``enabled``,
  ``description`` (or ``name``).

Pure: :func:`convert` returns the entry or raises ``ValueError`` naming the field.
"""

from __future__ import annotations

from typing import Any

from .cron import WEEKDAY_NAMES

#: APScheduler's cron fields, most significant first (its ``year`` and ``week`` are not ours).
FIELDS = ("month", "day", "hour", "minute", "second")
#: APScheduler's order of significance, ``day_of_week`` between ``day`` and ``hour``.
ORDER = ("month", "day", "day_of_week", "hour", "minute", "second")
MINIMUM = {"month": "1", "day": "1", "hour": "0", "minute": "0", "second": "0"}
#: APScheduler's weekday numbering: 0 is Monday.
APS_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
INTERVAL_UNITS = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
COMMON = {"job_id", "type", "config", "actor", "timezone", "priority", "queue", "misfire_grace_time", "coalesce",
          "max_instances", "enabled", "description", "name", "jitter"}
BY_TYPE = {
    "cron": {"cron_expression", "day_of_week", *FIELDS, "start_date", "end_date"},
    "interval": {*INTERVAL_UNITS, "start_date", "end_date"},
    "date": {"run_date"},
}


def is_apscheduler_entry(raw: object) -> bool:
    """Whether a job entry is written APScheduler's way (it has ``job_id``)."""
    return isinstance(raw, dict) and "job_id" in raw


def _weekday(token: str) -> int:
    token = token.strip().lower()
    if token in APS_WEEKDAYS:
        return APS_WEEKDAYS.index(token)
    if token.isdigit() and int(token) < 7:
        return int(token)
    raise ValueError(f"day_of_week: {token!r} is not a weekday (0-6 from Monday, or mon..sun)")


def weekdays(value: object) -> str:
    """APScheduler's ``day_of_week`` (0 = Monday, names, ranges, steps, lists) as crontab weekday names."""
    days: set[int] = set()
    for part in str(value).split(","):
        span, _, step_text = part.strip().partition("/")
        step = int(step_text) if step_text.isdigit() else 1
        if step_text and not step_text.isdigit():
            raise ValueError(f"day_of_week: bad step in {part!r}")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            first, _, last = span.partition("-")
            low, high = _weekday(first), _weekday(last)
            if high < low:
                raise ValueError(f"day_of_week: range {span!r} runs backwards")
        else:
            low = high = _weekday(span)
        days.update(range(low, high + 1, step))
    # crontab's names (sun..sat) carry no numbering ambiguity.
    return ",".join(WEEKDAY_NAMES[(day + 1) % 7] for day in sorted(days, key=lambda d: (d + 1) % 7))


def _cron(raw: dict[str, Any]) -> str:
    if raw.get("cron_expression") is not None:
        given = [f for f in (*FIELDS, "day_of_week") if f in raw]
        if given:
            raise ValueError(f"cron_expression: give it or the fields ({', '.join(given)}), not both")
        return str(raw["cron_expression"])
    given = [f for f in ORDER if raw.get(f) is not None]
    if not given:
        raise ValueError("type: a cron job needs cron_expression or at least one of hour, minute, day_of_week...")
    # APScheduler: fields above the smallest one given default to '*', those below to their minimum.
    smallest = max(ORDER.index(f) for f in given)
    values = {f: str(raw[f]) if raw.get(f) is not None else ("*" if ORDER.index(f) < smallest else MINIMUM[f])
              for f in FIELDS}
    dow = weekdays(raw["day_of_week"]) if raw.get("day_of_week") is not None else "*"
    return " ".join([values["second"], values["minute"], values["hour"], values["day"], values["month"], dow])


def convert(raw: dict[str, Any], pipeline: str | None) -> dict[str, Any]:
    """Our jobs-file entry for an APScheduler-style ``raw`` entry.

    Parameters:
      raw: The entry as written.
      pipeline: The actor of entries without ``actor`` (the application's pipeline job), if any.

    Raises:
      ValueError: ``field: what is wrong``.
    """
    kind = raw.get("type")
    if kind not in BY_TYPE:
        raise ValueError(f"type: must be 'cron', 'interval' or 'date', got {kind!r}")
    unknown = sorted(set(raw) - COMMON - BY_TYPE[kind])
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field for a {kind} job")
    actor = raw.get("actor") or pipeline
    if not actor:
        raise ValueError("actor: no actor given and no pipeline job registered")
    config = raw.get("config") if raw.get("config") is not None else {}
    if not isinstance(config, dict):
        raise ValueError("config: must be an object (the job's arguments)")
    entry: dict[str, Any] = {"id": raw["job_id"], "actor": actor, "kwargs": dict(config)}
    if kind == "cron":
        entry["cron"] = _cron(raw)
        if raw.get("start_date") is not None or raw.get("end_date") is not None:
            raise ValueError("start_date: cron jobs with start or end dates are not supported; use enabled")
    elif kind == "interval":
        spec = {unit: raw[unit] for unit in INTERVAL_UNITS if raw.get(unit) is not None}
        if "weeks" in spec:
            spec["days"] = spec.get("days", 0) + 7 * spec.pop("weeks")
        if raw.get("start_date") is not None:
            spec["start"] = raw["start_date"]
        if raw.get("end_date") is not None:
            spec["end"] = raw["end_date"]
        entry["interval"] = spec
    else:
        if raw.get("run_date") is None:
            raise ValueError("run_date: a date job needs run_date")
        entry["date"] = raw["run_date"]
    for ours, theirs in (("timezone", "timezone"), ("priority", "priority"), ("queue", "queue"),
                         ("enabled", "enabled"), ("jitter", "jitter"), ("misfire_grace", "misfire_grace_time")):
        if raw.get(theirs) is not None:
            entry[ours] = raw[theirs]
    description = raw.get("description") or raw.get("name")
    if description:
        entry["description"] = description
    if raw.get("coalesce") is False:
        entry["misfire"] = "run_all"
    if isinstance(raw.get("max_instances"), int) and raw["max_instances"] > 1:
        entry["overlap"] = "allow"
    return entry
