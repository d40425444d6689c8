"""Claims in the ``claims`` table: a key held by one owner until it expires (single-host mode)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, insert, select
from sqlalchemy.exc import IntegrityError

from .models import claims


def claim(engine: Engine, key: str, owner: str, ttl: float, now: float) -> str:
    """Hold ``key`` for ``owner`` for ``ttl`` seconds unless someone holds it; returns the holder."""
    for _ in range(3):
        try:
            with engine.begin() as conn:
                held = conn.execute(select(claims.c.owner, claims.c.expires_at).where(claims.c.key == key)).first()
                if held is not None and held.expires_at > now:
                    return str(held.owner)
                if held is not None:
                    conn.execute(delete(claims).where(claims.c.key == key, claims.c.expires_at <= now))
                conn.execute(insert(claims).values(key=key, owner=owner, expires_at=now + ttl))
                return owner
        except IntegrityError:  # another process claimed it between our read and our insert
            continue
    with engine.connect() as conn:
        current = conn.scalar(select(claims.c.owner).where(claims.c.key == key))
        return current or owner


def release(engine: Engine, key: str, owner: str) -> None:
    """Let go of ``key`` if ``owner`` holds it."""
    with engine.begin() as conn:
        conn.execute(delete(claims).where(claims.c.key == key, claims.c.owner == owner))
