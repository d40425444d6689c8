"""Fleet-wide rate limits: the jobs file's ``rate_limits:``, per queue or per named group of jobs.

```yaml
rate_limits:
  - queue: etl               # every job on the etl queue...
    rate: 10/m               # ...at most 10 starts a minute, across every worker and host
  - group: ingest            # a named group of jobs sharing one limit
    actors: [github_ingest, spotify_ingest]
    rate: {production: 30/h, development: 60/h}
```

Every worker reads them at boot (:class:`~broker_jobs.middleware.RateLimit`); the limiter's
counts live in Redis with ``REDIS_URL`` (every host shares them), else in one SQLite file per
host (:mod:`broker_jobs.host_limits`).  Apart from the scheduler's config so that a worker
reads them without the scheduling machinery, and light (no dramatiq) for the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .scheduling.jobs_file import Located

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
_ENVIRONMENTS = ("development", "production", "default")


def parse_rate(spec: str) -> tuple[int, int]:
    """Parse ``"10/m"`` or ``"100/30s"`` into (limit, window in seconds).

    Raises:
      ValueError: naming the accepted form.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if not match or int(match.group(1)) < 1 or match.group(2) == "0":
        raise ValueError(f"invalid rate limit {spec!r}: use N/s, N/m, N/h, N/d or N/<k><unit>")
    count = int(match.group(2) or 1)
    return int(match.group(1)), count * _UNITS[match.group(3)]


@dataclass(frozen=True)
class FleetLimit:
    """One shared limit.

    Parameters:
      key: The limiter's key (``queue:etl`` or ``group:ingest``): every worker using the same backend shares it.
      rate: As written (``10/m``).
      queue: The queue it covers (a queue limit), or None.
      actors: The jobs it covers (a group limit).
    """

    key: str
    rate: str
    queue: str | None = None
    actors: frozenset[str] = frozenset()

    @property
    def limit(self) -> int:
        """Runs allowed per window."""
        return parse_rate(self.rate)[0]

    @property
    def window(self) -> int:
        """The window, in seconds."""
        return parse_rate(self.rate)[1]

    def covers(self, queue: str, actor: str) -> bool:
        """Whether a message of ``actor`` on ``queue`` (canonical name) counts against this limit."""
        return queue == self.queue if self.queue is not None else actor in self.actors

    def describe(self) -> str:
        """``queue etl: 10/m`` or ``group ingest (github_ingest, spotify_ingest): 30/h``."""
        if self.queue is not None:
            return f"queue {self.queue}: {self.rate}"
        return f"group {self.key.removeprefix('group:')} ({', '.join(sorted(self.actors))}): {self.rate}"


def _env_value(value: Any, app_env: str, where: str) -> Any:
    if isinstance(value, dict) and value and set(value) <= set(_ENVIRONMENTS):
        if app_env in value:
            return value[app_env]
        if "default" in value:
            return value["default"]
        raise ValueError(f"{where}: no value for APP_ENV={app_env!r} (give it or a 'default')")
    return value


def parse_limits(raw: Any, app_env: str) -> list[FleetLimit]:
    """Validate the ``rate_limits:`` list as written.

    Raises:
      ValueError: ``rate_limits[i].field: message`` (the caller adds the file and line).
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("rate_limits: must be a list of limits")
    limits: list[FleetLimit] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        here = f"rate_limits[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{here}: must be a mapping with queue or group, and rate")
        unknown = sorted(set(entry) - {"queue", "group", "actors", "rate", "description"})
        if unknown:
            raise ValueError(f"{here}.{unknown[0]}: unknown field")
        entry = {k: _env_value(v, app_env, f"{here}.{k}") for k, v in entry.items()}
        if ("queue" in entry) == ("group" in entry):
            raise ValueError(f"{here}: exactly one of queue or group is required")
        rate = entry.get("rate")
        if rate is None:
            raise ValueError(f"{here}.rate: Field required")
        try:
            parse_rate(rate)
        except ValueError as exc:
            raise ValueError(f"{here}.rate: {exc}") from None
        if "queue" in entry:
            queue = entry["queue"]
            if not isinstance(queue, str) or not _NAME.match(queue):
                raise ValueError(f"{here}.queue: must be a queue name")
            if "actors" in entry:
                raise ValueError(f"{here}.actors: a queue limit covers every job of the queue (use group for a list)")
            limit = FleetLimit(key=f"queue:{queue}", rate=rate, queue=queue)
        else:
            group, actors = entry["group"], entry.get("actors")
            if not isinstance(group, str) or not _NAME.match(group):
                raise ValueError(f"{here}.group: must be a name (letters, digits, . _ : -)")
            if not isinstance(actors, list) or not actors or not all(isinstance(a, str) and a for a in actors):
                raise ValueError(f"{here}.actors: must be a non-empty list of job names")
            limit = FleetLimit(key=f"group:{group}", rate=rate, actors=frozenset(actors))
        if limit.key in seen:
            first = seen[limit.key]
            raise ValueError(f"{here}: duplicate {limit.key.replace(':', ' ')} (first in rate_limits[{first}])")
        seen[limit.key] = i
        limits.append(limit)
    return limits


def read_limits(path: Path, app_env: str) -> list[FleetLimit]:
    """The jobs file's limits for ``app_env``; none when the file cannot be read (a worker may run without one).

    Raises:
      ConfigError: ``file:line: rate_limits[i].field: message`` for a file that is there but wrong.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    doc = Located(text, str(path))
    return limits_of(doc, app_env)


def limits_of(doc: Located, app_env: str) -> list[FleetLimit]:
    """The limits of a located jobs file (:class:`~broker_jobs.scheduling.jobs_file.Located`).

    Raises:
      ConfigError: located at the entry's line.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    try:
        return parse_limits(data.get("rate_limits"), app_env)
    except ValueError as exc:
        message = str(exc)
        where, _, why = message.partition(": ")
        match = re.match(r"rate_limits(?:\[(\d+)\])?(?:\.(\w+))?$", where)
        if match is None:
            raise ConfigError(f"{doc.source}: {message}") from None
        path: tuple[str | int, ...] = ("rate_limits",)
        if match.group(1) is not None:
            path += (int(match.group(1)),)
        if match.group(2) is not None:
            path += (match.group(2),)
        raise doc.error(path, why) from None
