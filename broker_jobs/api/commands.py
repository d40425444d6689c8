"""``broker-jobs serve`` (API, dashboard, health, /metrics) and ``broker-jobs token``."""

from __future__ import annotations

import ipaddress
import socket

import click

from ..cli.common import guarded, settings


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``127.0.0.0/8``, ``::1``, ``localhost``)."""

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, port: int) -> None:
    """Fail in one line, before the app is built, when ``host:port`` cannot be listened on.

    Raises:
      ConfigError: naming the address (taken by another process, not an address of this host, ...).
    """

    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; the CLI's --help stays light

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        raise ConfigError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


#: Life of the token ``--print-token`` prints (capped by API_TOKEN_MAX_TTL).
PRINTED_TOKEN_TTL = 12 * 3600


@click.command()
@click.option("--host", help="Address to bind (default API_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default API_PORT, 8000).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True, help="uvicorn's log level.")
@click.option("--print-token", is_flag=True,
              help="Print a dashboard link carrying an operate token (loopback addresses only).")
@guarded
def serve(host: str | None, port: int | None, log_level: str, print_token: bool) -> None:
    """Serve the HTTP API, the dashboard, the health probes and /metrics.

    Without API_JWT_SECRET, a development server makes up a secret for this run
    (only ``--print-token`` then gives a working token); a production server
    (APP_ENV=production) refuses to start.  ``--print-token`` prints a dashboard
    link with an operate token (12 hours at most) and is refused when the server
    binds beyond loopback: a log line must not hand the API to whoever reads it.
    """
    import uvicorn  # deferred: FastAPI, uvicorn and PyJWT, only when serving or minting

    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; the CLI's --help stays light
    from .app import create_app  # deferred: FastAPI, uvicorn and PyJWT, only when serving or minting
    from .auth import (  # deferred: FastAPI, uvicorn and PyJWT, only when serving or minting
        mint_token,
        random_secret,
        secret_of,
    )

    s = settings()
    host = host or s.api_host
    port = port or s.api_port
    if print_token and not is_loopback(host):
        raise ConfigError(f"--print-token: refused when binding {host} (beyond loopback); "
                          "mint a token with `broker-jobs token --scope operate`")
    check_listen(host, port)
    secret: str | None = None
    try:
        secret_of(s)
    except ConfigError:
        if s.app_env == "production":
            raise
        secret = random_secret()
    app = create_app(s, jwt_secret=secret)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    click.echo(f"broker-jobs: serving on http://{shown}:{port}/ (API docs at /docs)", err=True)
    if print_token:
        ttl = min(PRINTED_TOKEN_TTL, s.api_token_max_ttl)
        token = mint_token(secret or secret_of(s), "operate", ttl=ttl, subject="dashboard")
        click.echo(f"broker-jobs: dashboard (operate token valid {ttl // 60} min): "
                   f"http://{shown}:{port}/?token={token}", err=True)
    elif secret is not None:
        click.echo("broker-jobs: no API_JWT_SECRET: this run signs with a random secret; "
                   "restart with --print-token for a dashboard link", err=True)
    # With LOG_FORMAT=json uvicorn's records go through our JSON handler instead of its own format.
    log_config = None if s.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                log_config=log_config)


@click.command()
@click.option("--scope", type=click.Choice(["read", "operate"]), required=True,
              help="read: look only; operate: also run, pause, resume, backfill, replay, sync.")
@click.option("--ttl", type=click.FloatRange(min=1), default=3600.0, show_default=True,
              help="Seconds until the token expires (at most API_TOKEN_MAX_TTL).")
@click.option("--subject", default="cli", show_default=True, help="Who the token is for (the sub claim).")
@guarded
def token(scope: str, ttl: float, subject: str) -> None:
    """Print a bearer token for the HTTP API, signed with API_JWT_SECRET."""
    from .auth import mint_token, secret_of  # deferred: FastAPI, uvicorn and PyJWT, only when serving or minting

    s = settings()
    click.echo(mint_token(secret_of(s), scope, ttl=ttl, subject=subject, max_ttl=s.api_token_max_ttl))


COMMANDS = [serve, token]
