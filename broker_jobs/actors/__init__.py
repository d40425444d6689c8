"""Every built-in job, for ``dramatiq broker_jobs.actors`` and ``periodiq broker_jobs.actors``.

User jobs go in their own modules, declared with :func:`broker_jobs.job`:
``dramatiq broker_jobs.actors myapp.jobs``.
"""

from __future__ import annotations

import sys

from ..errors import ConfigError

try:
    from ..broker import get_broker

    broker = get_broker()
except ConfigError as exc:  # a user mistake: one line, exit 2, no traceback
    print(f"broker-jobs: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

from .diagnostics import diagnostics  # noqa: E402
from .maintenance import prune_history  # noqa: E402

__all__ = ["broker", "diagnostics", "prune_history"]
