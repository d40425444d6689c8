"""The real-process fixtures of tests/api (private vhost, database, ports, metrics directory)."""

from tests.api.conftest import server, service_env, vhost_url, worker  # noqa: F401
