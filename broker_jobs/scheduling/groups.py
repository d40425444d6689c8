"""Job groups (the jobs file's ``group:``) and the pauses of whole schedulers.

A job without ``group:`` is in :data:`DEFAULT`.  ``broker-jobs scheduler`` runs every
job under the lease ``scheduler``; ``broker-jobs scheduler --group NAME`` runs only
that group's jobs under a lease of its own (``scheduler:NAME``), so groups are
scaled, deployed and fail apart.  A pause of a whole scheduler is a row of
``sched_controls`` under a key no job id can take (job ids start with a letter or digit).
"""

from __future__ import annotations

import re

#: The group of a job that names none.
DEFAULT = "default"
#: The path segment of the admin API that means every group.
EVERYTHING = "all"
#: ``group:`` as written: at most 50 characters, so the lease name fits its column.
PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,49}$")

_ALL_KEY = "@all"


def control_key(group: str | None) -> str:
    """The ``sched_controls`` key pausing every job (``group`` None) or one group's jobs."""
    return _ALL_KEY if group is None else f"@group:{group}"


def is_control_key(key: str) -> bool:
    """Whether a ``sched_controls`` key pauses a whole scheduler rather than one job."""
    return key.startswith("@")
