"""Claims in the ``claims`` table: a key held by one owner until it expires (single-host mode)."""

from __future__ import annotations

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import Claim


def claim(engine: Engine, key: str, owner: str, ttl: float, now: float) -> str:
    """Hold ``key`` for ``owner`` for ``ttl`` seconds unless someone holds it; returns the holder."""
    for _ in range(3):
        with Session(engine) as session:
            held = session.get(Claim, key)
            if held is not None and held.expires_at > now:
                return held.owner
            try:
                if held is not None:
                    session.execute(delete(Claim).where(Claim.key == key, Claim.expires_at <= now))
                session.add(Claim(key=key, owner=owner, expires_at=now + ttl))
                session.commit()
                return owner
            except IntegrityError:  # another process claimed it between our read and our insert
                session.rollback()
    with Session(engine) as session:
        current = session.scalar(select(Claim.owner).where(Claim.key == key))
        return current or owner


def release(engine: Engine, key: str, owner: str) -> None:
    """Let go of ``key`` if ``owner`` holds it."""
    with engine.begin() as conn:
        conn.execute(delete(Claim).where(Claim.key == key, Claim.owner == owner))
