"""broker_jobs' Dramatiq middleware, one per file."""

from .dedup import FireDedup
from .history import History
from .priority import PriorityTagging
from .rate_limit import RateLimit
from .retries import JobRetries
from .size_limit import MessageSizeLimit

__all__ = ["FireDedup", "History", "JobRetries", "MessageSizeLimit", "PriorityTagging", "RateLimit"]
