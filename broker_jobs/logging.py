"""One ``configure_logging()``: plain lines, or JSON lines with ``LOG_FORMAT=json``."""

from __future__ import annotations

import json
import logging
import time

from .redaction import redact


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        if record.exc_info:
            payload["exc_info"] = redact(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


class PlainFormatter(logging.Formatter):
    """``PLAIN`` lines, URL passwords masked (an error may quote a URL with its credentials)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Another formatter's lines with URL passwords masked (handlers someone else set up)."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def redact_handlers() -> None:
    """Mask URL passwords in the lines of the root logger's plain stream handlers (the dramatiq CLI's own).

    Only handlers of exactly :class:`logging.StreamHandler` (what ``logging.basicConfig``
    makes) are wrapped: an application's or a test runner's own handlers are left alone.
    """
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler and not isinstance(
                handler.formatter, (JsonFormatter, PlainFormatter, RedactingFormatter)):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def configure_logging(level: str = "INFO", fmt: str = "plain") -> None:
    """Configure the root logger once for this process.

    Parameters:
      level: A logging level name.
      fmt: ``plain`` or ``json``.
    """
    root = logging.getLogger()
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else PlainFormatter(PLAIN))
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pika").setLevel(logging.WARNING)
