"""Waiting on a condition instead of sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60, every: float = 0.3,
             ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate`` until it returns something true, and return that.

    Parameters:
      predicate: Called every ``every`` seconds.
      what: What is awaited, named in the failure.
      timeout: Seconds before failing.
      every: Seconds between two calls.
      ignore: Exceptions that mean "not yet" (a server still starting) rather than a failure.

    Raises:
      AssertionError: after ``timeout`` s, naming ``what`` and the last answer.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    detail = "" if last is None or last is False else f" (last: {last!r})"
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{detail}")
