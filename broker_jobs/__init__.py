"""broker_jobs: scheduled and on-demand background jobs over RabbitMQ with Dramatiq.

Importing this package never connects to anything, and imports nothing heavy: ``job`` and the errors are
resolved on first use (``broker-jobs --help`` must not pay for dramatiq and pydantic).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from .priorities import Priority

if TYPE_CHECKING:
    from .errors import PermanentJobError, SkipJob, TransientJobError
    from .job import job

__version__ = "0.1.0"
__all__ = ["PermanentJobError", "Priority", "SkipJob", "TransientJobError", "__version__", "job"]

_ERRORS = ("PermanentJobError", "SkipJob", "TransientJobError")


class _Package(types.ModuleType):
    """This package: ``job`` and the errors on first use; ``broker_jobs.job`` stays the decorator."""

    def __getattr__(self, name: str) -> Any:
        if name == "job":
            from .job import job as decorator  # deferred: dramatiq and pydantic, on first use only

            types.ModuleType.__setattr__(self, "job", decorator)
            return decorator
        if name in _ERRORS:
            from . import errors  # deferred: errors.py pulls dramatiq, on first use only

            return getattr(errors, name)
        raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule `broker_jobs.job` would bind the module over the decorator (as the eager
        # `from .job import job` used to undo): the public name stays the decorator.
        if name == "job" and isinstance(value, types.ModuleType):
            return
        types.ModuleType.__setattr__(self, name, value)


sys.modules[__name__].__class__ = _Package
