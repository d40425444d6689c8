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
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any

#: What replaces a secret.
MASK = "***"

# A scheme starts a word (the look-behind keeps the search linear on long runs of letters).
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,63}://")
_SPACE = re.compile(r"\s")
_NOT_IN_USER = frozenset("/?#[]")
_MAX_USER = 256
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
        text = _mask_user_info(text)
    if "=" in text:
        text = _QUERY_SECRET.sub(lambda m: m["head"] + MASK, text)
    return text


def _mask_user_info(text: str) -> str:
    # A scan, not one regular expression: ``\S*@`` backtracks, and hostile text (a note's
    # link target in a report) must not make redaction quadratic.  Each word is measured once.
    pieces: list[str] = []
    done, word_end, last_at = 0, -1, -1
    for match in _SCHEME.finditer(text):
        start = match.end()
        if start <= done:  # inside a password already masked
            continue
        if start > word_end:
            space = _SPACE.search(text, start)
            word_end = space.start() if space else len(text)
            last_at = text.rfind("@", start, word_end)
        if last_at < start:
            continue
        colon = text.find(":", start, min(last_at, start + _MAX_USER + 1))
        if colon < 0 or not _NOT_IN_USER.isdisjoint(text[start:colon]):
            continue
        pieces += [text[done:colon + 1], MASK]
        done = last_at
    if not pieces:
        return text
    pieces.append(text[done:])
    return "".join(pieces)


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


_SCALARS = frozenset({int, float, bool, type(None)})


def redact_call(args: Sequence[Any], kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """A call's arguments as ``{"args": [...], "kwargs": {...}}``, through :func:`redact_value`.

    A call whose arguments, keyword names and values are all plain (numbers, booleans, None
    and strings with no ``://`` or ``=``, which :func:`redact` leaves alone) is returned as it
    is, without the recursion: every run's arguments come here (1.6 → 0.7 µs for three of them).
    """
    positional, named = list(args), dict(kwargs or {})
    call: dict[str, Any] = {"args": positional, "kwargs": named}
    for value in chain(positional, named, named.values()):
        cls = value.__class__
        if not (cls in _SCALARS or (cls is str and "://" not in value and "=" not in value)):
            return dict(redact_value(call))
    return call


def redact_value(value: Any) -> Any:
    """:func:`redact` applied to every string inside ``value`` (dicts, lists, tuples), keys included.

    Containers are copied; strings and other values are returned as they are when nothing in them
    is masked.  (Every run's arguments go through here: the common cases are tested first.)
    """
    cls = value.__class__
    if cls is str:
        return redact(value) if "://" in value or "=" in value else value
    if cls in _SCALARS:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v) for v in value] if cls is list else cls(redact_value(v) for v in value)
    if isinstance(value, tuple):
        return tuple([redact_value(v) for v in value]) if cls is tuple else cls(redact_value(v) for v in value)
    return value
