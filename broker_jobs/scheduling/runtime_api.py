"""A Python API over the persistent runtime jobs, shaped like an APScheduler pipeline scheduler's::

    from broker_jobs.scheduling.runtime_api import RuntimeJobs

    jobs = RuntimeJobs()
    jobs.add_cron_job(job_id="daily_update", hour=2, minute=0,
                      pipeline_config={"incremental_mode": "auto", "ci_mode": True})
    jobs.add_interval_job(job_id="interval_check", hours=6, pipeline_config={"dry_run": True})
    jobs.run_now("daily_update")
    jobs.remove_job("interval_check")
    jobs.get_job_stats()   # {"jobs_executed": ..., "jobs_failed": ..., "jobs_missed": ..., "last_error": ...}

Each job is written as an APScheduler config entry (:mod:`.apscheduler_format`: field cron with
APScheduler's meaning, ``pipeline_config`` as the job's arguments, the application's pipeline job unless
``actor`` is given) and stored as a runtime job (:func:`.control.add_runtime_job`): every scheduler
instance, of either engine, picks it up within 5 s, and it survives restarts.  Nothing runs in the
calling process: there is no ``start()``/``shutdown()``; run ``broker-jobs scheduler``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .. import registry
from ..errors import ConfigError
from ..settings import Settings, get_settings
from . import control, firing
from .apscheduler_format import convert


class RuntimeJobs:
    """Add, remove and run runtime jobs from Python.

    Parameters:
      settings: The settings (default: the process's, from the environment).
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        registry.load_jobs()

    def _add(self, raw: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        raw.update({k: v for k, v in options.items() if v is not None})
        try:
            entry = convert({k: v for k, v in raw.items() if v is not None}, registry.pipeline())
        except ValueError as exc:
            raise ConfigError(f"job.{exc}") from None
        return control.add_runtime_job(self.settings, entry)

    def add_cron_job(self, job_id: str, *, hour: int | str | None = None, minute: int | str | None = None,
                     second: int | str | None = None, day: int | str | None = None, month: int | str | None = None,
                     day_of_week: int | str | None = None, cron_expression: str | None = None,
                     pipeline_config: dict[str, Any] | None = None, actor: str | None = None,
                     **options: Any) -> dict[str, Any]:
        """Add (or replace) a cron job; fields as APScheduler reads them (``day_of_week`` 0 is Monday).

        Parameters:
          options: Other fields of an APScheduler config entry (``timezone``, ``priority``,
            ``misfire_grace_time``, ``coalesce``, ``max_instances``...).

        Returns:
          The job as ``broker-jobs jobs list`` shows it.

        Raises:
          ConfigError: naming the field at fault; nothing is stored.
        """
        return self._add({"job_id": job_id, "type": "cron", "hour": hour, "minute": minute, "second": second,
                          "day": day, "month": month, "day_of_week": day_of_week,
                          "cron_expression": cron_expression, "config": pipeline_config, "actor": actor}, options)

    def add_interval_job(self, job_id: str, *, weeks: float = 0, days: float = 0, hours: float = 0,
                         minutes: float = 0, seconds: float = 0, start_date: datetime | str | None = None,
                         end_date: datetime | str | None = None, pipeline_config: dict[str, Any] | None = None,
                         actor: str | None = None, **options: Any) -> dict[str, Any]:
        """Add (or replace) a job every ``weeks + days + hours + minutes + seconds``."""
        units = {"weeks": weeks, "days": days, "hours": hours, "minutes": minutes, "seconds": seconds}
        return self._add({"job_id": job_id, "type": "interval", **{k: v for k, v in units.items() if v},
                          "start_date": _text(start_date), "end_date": _text(end_date),
                          "config": pipeline_config, "actor": actor}, options)

    def add_one_time_job(self, job_id: str, run_date: datetime | str, *,
                         pipeline_config: dict[str, Any] | None = None, actor: str | None = None,
                         **options: Any) -> dict[str, Any]:
        """Add (or replace) a job that runs once at ``run_date`` (naive: in its time zone)."""
        return self._add({"job_id": job_id, "type": "date", "run_date": _text(run_date), "config": pipeline_config,
                          "actor": actor}, options)

    def remove_job(self, job_id: str) -> dict[str, Any]:
        """Remove a runtime job (NotFoundError if there is none)."""
        return control.remove_runtime_job(self.settings, job_id)

    def run_now(self, job_id: str, force: bool = False) -> dict[str, Any]:
        """Publish one run of the job now, through its overlap policy unless ``force``."""
        return firing.run_now(self.settings, job_id, force)

    def get_jobs(self) -> list[dict[str, Any]]:
        """Every job (file and runtime), as ``broker-jobs jobs list`` shows them."""
        return control.list_jobs(self.settings)

    def get_job_stats(self) -> dict[str, Any]:
        """``jobs_executed``, ``jobs_failed``, ``jobs_missed`` and ``last_error`` in total, and ``jobs`` per job."""
        stats = control.job_stats(self.settings)
        return {**stats["total"], "jobs": stats["jobs"]}


def _text(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value
