"""The real-process fixtures of tests/framework/api (private vhost, database, ports, metrics directory)."""

from tests.framework.api.conftest import server, service_env, vhost_url, worker  # noqa: F401
