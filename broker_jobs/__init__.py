"""broker_jobs: scheduled and on-demand background jobs over RabbitMQ with Dramatiq.

Importing this package never connects to anything.
"""

from .errors import PermanentJobError, SkipJob, TransientJobError
from .job import job
from .priorities import Priority

__version__ = "0.1.0"
__all__ = ["PermanentJobError", "Priority", "SkipJob", "TransientJobError", "__version__", "job"]
