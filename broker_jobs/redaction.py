"""One redaction of the credentials that ride in URLs, for every place text is printed or stored.

``DATABASE_URL``, ``RABBITMQ_URL``, ``REDIS_URL`` and a CSV source such as
``https://user:pass@host/x.csv`` carry a password in their user info.  Errors
and log lines quote such URLs (SQLAlchemy's "could not parse", an HTTP error
naming its URL), so everything that leaves the process as text -- log lines,
job reports, history rows, dead-letter reasons, alerts, ``/health``, CLI
errors -- goes through :func:`redact`.

The password is what follows ``scheme://user:`` up to the last ``@`` before
whitespace.  That covers both readings of a URL in use: ``urllib`` takes the
last ``@`` of the authority, SQLAlchemy the first ``@`` and lets ``/`` into a
password.  A later ``@`` in the same word is over-redacted, never leaked.
Query parameters named like a credential (``access_token=``, ``api_key=``,
``password=``...) are masked too.  User names stay: they help to debug and
are not secret.
"""

from __future__ import annotations

import logging
import re
from typing import Any

#: What replaces a secret.
MASK = "***"

_USERINFO = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\[\]]*):(?P<password>\S*)@"
)
_QUERY_SECRET = re.compile(
    r"(?P<head>[?&;](?:access_token|refresh_token|id_token|token|api_key|apikey|key|secret|client_secret"
    r"|password|passwd|pwd|sig|signature)=)(?P<value>[^&;#\s'\"]+)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` with every URL password and credential query parameter replaced by ``***``.

    Parameters:
      text: Any text: a URL, an error message, a log line, a traceback.
    """
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m["head"] + MASK, text)
    return text


class RedactFilter(logging.Filter):
    """A logging filter that masks URL passwords in a record before any handler sees it.

    Installed on loggers of libraries that print URLs whole (httpx logs every
    request as ``HTTP Request: GET <url>``), whatever handlers the process has.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside ``value`` (dicts, lists, tuples), keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value
