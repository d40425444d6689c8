"""PostgreSQL databases of a test's own on the shared server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


@contextmanager
def database(admin_url: str, prefix: str, ddl: str = "") -> Iterator[str]:
    """A fresh database on the PostgreSQL server of ``admin_url`` (``ddl`` run in it), dropped afterwards.

    The caller may lock its tables or refuse connections to it; the server and
    every other database stay untouched.
    """
    import sqlalchemy

    admin = sqlalchemy.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(admin_url)._replace(path="/" + name))
    if ddl:
        engine = sqlalchemy.create_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql(ddl)
        engine.dispose()
    try:
        yield url
    finally:
        from broker_jobs.store.db import reset_engines

        reset_engines()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
