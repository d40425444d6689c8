"""The one clock of the package: the current time, and stored times made comparable to it.

Every timestamp the package writes or compares is timezone-aware UTC.  SQLite
hands ``DateTime(timezone=True)`` columns back naive, so whatever reads a stored
time passes it through :func:`as_utc` (one repair, here, instead of one per query).
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """``value`` as aware UTC: a naive value (SQLite) is taken as UTC, an aware one converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
