"""The fault tests' effects table, shared by the jobs (in workers) and the tests.

Importing this module declares no actor: the test process must not register
the fault jobs on its own broker.
"""

from __future__ import annotations

from sqlalchemy import text

QUEUE = "faults"

EFFECTS_DDL = """
CREATE TABLE IF NOT EXISTS fault_effects (
    key text PRIMARY KEY,
    runs integer NOT NULL DEFAULT 1,
    first_at double precision NOT NULL,
    last_at double precision NOT NULL
)
"""

UPSERT = text(
    "INSERT INTO fault_effects (key, runs, first_at, last_at) VALUES (:key, 1, :now, :now) "
    "ON CONFLICT (key) DO UPDATE SET runs = fault_effects.runs + 1, last_at = excluded.last_at"
)
