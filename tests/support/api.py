"""What tests of the HTTP API share: the signing secret, a jobs file whose schedule never fires by itself,
tokens minted as ``broker-jobs token`` does, and what polling a starting server may raise."""

from __future__ import annotations

import httpx

SECRET = "test-secret-" + "x" * 40

#: One schedule that never fires by itself during a test (the first minute of a rare day).
JOBS_FILE = """\
jobs:
  - id: nightly-diagnostics
    actor: diagnostics
    cron: "0 3 29 2 *"
    priority: high
"""


#: What polling a process that may still be starting can raise: "not yet", not a failure.
UNREACHABLE = (httpx.HTTPError, OSError)


def token(scope: str, ttl: float = 600, secret: str = SECRET) -> str:
    """A bearer token minted the way ``broker-jobs token`` does."""
    from broker_jobs.api.auth import mint_token

    return mint_token(secret, scope, ttl=ttl)


def bearer(scope: str) -> dict[str, str]:
    """Authorization header for ``scope``."""
    return {"Authorization": f"Bearer {token(scope)}"}
