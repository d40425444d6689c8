"""The progress of a long operation (a bulk replay or purge, a queue repair), reported to whoever shows it.

The framework reports; the CLI draws a bar on a terminal (``broker_jobs.cli.common.progress_bar``); everybody else
passes nothing and gets :data:`SILENT`.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Where an operation reports how far it is."""

    def found(self, count: int) -> None:
        """``count`` more items to go (the total grows as the operation finds its work)."""

    def done(self, count: int = 1) -> None:
        """``count`` items finished."""


class _Silent:
    """Reports to nobody."""

    def found(self, count: int) -> None:
        pass

    def done(self, count: int = 1) -> None:
        pass


#: The progress of an operation nobody watches.
SILENT: Progress = _Silent()
