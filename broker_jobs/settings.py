"""Settings from the environment and an optional ``.env`` file.

Every variable is documented in the README's configuration table.  A bad
value raises :class:`~broker_jobs.errors.ConfigError` naming the variable.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError
from .redaction import redact

#: RabbitMQ closes a channel holding a delivery unacked this long (ms in rabbitmq.conf).
DEFAULT_CONSUMER_TIMEOUT = 1800


class Settings(BaseSettings):
    """The framework's configuration, read once per process (the built-in jobs' own: ``broker_jobs.app.settings``)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    app_env: Literal["development", "production"] = "development"
    rabbitmq_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        validation_alias=AliasChoices("RABBITMQ_URL", "CLOUDAMQP_URL", "AMQP_URL"),
    )
    # Several nodes of one RabbitMQ cluster (comma, semicolon or space separated): every client connects to the
    # first live one and moves to another when it dies. Set, it wins over RABBITMQ_URL (which becomes its first).
    rabbitmq_urls: str | None = None
    rabbitmq_management_url: str | None = None
    # classic (one node) or quorum (a cluster: replicated queues); see the README's "Queue types".
    queue_type: Literal["classic", "quorum"] = "classic"
    # Quorum queues only: deliveries of one message (a worker died holding it) before it is dead-lettered.
    quorum_delivery_limit: int = Field(20, ge=1, le=1000)
    redis_url: str | None = None
    # Without REDIS_URL the rate limiters' counts live here, shared by every worker process of the host.
    rate_limit_file: Path = Path("data/rate_limits.sqlite3")
    database_url: str = "sqlite:///data/broker_jobs.sqlite3"
    jobs_config: Path = Path("config/jobs.yaml")
    scheduler_timezone: str = "UTC"
    etl_concurrency: int = Field(2, ge=1, le=256)
    job_timeout: int = Field(600, ge=1, description="seconds")
    max_retries: int = Field(3, ge=0, le=100)
    retry_min_backoff: float = Field(2.0, gt=0, description="seconds")
    retry_max_backoff: float = Field(300.0, gt=0, description="seconds")
    # Down to 5 s so the fault tests can prove delays and backoffs against a short timeout.
    consumer_timeout: int = Field(DEFAULT_CONSUMER_TIMEOUT, ge=5, description="seconds")
    metrics_port: int = Field(9191, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_dir: Path | None = None
    api_jwt_secret: SecretStr | None = None
    # Longest life of an API token: longer-lived (or exp-less) tokens are refused, and not minted.
    api_token_max_ttl: int = Field(86400, ge=60, le=31 * 86400, description="seconds")
    alert_webhook_url: str | None = None
    alert_cooldown: float = Field(900.0, ge=0, description="seconds")
    api_port: int = Field(8000, ge=1, le=65535)
    api_host: str = "127.0.0.1"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["plain", "json"] = "plain"
    log_runs: Literal["all", "slow", "failures"] = "slow"
    history_keep_completed: int = Field(100, ge=0)
    # Seed 002's "keep last 5 failed jobs": per job, on top of the age limit.
    history_keep_failed: int = Field(5, ge=0)
    history_completed_ttl: int = Field(3600, ge=0, description="seconds")
    history_failed_ttl: int = Field(86400, ge=0, description="seconds")
    dead_letter_ttl: int = Field(7 * 86400, ge=0, description="seconds")
    slot_audit_ttl: int = Field(30 * 86400, ge=0, description="seconds")
    publish_timeout: float = Field(10.0, gt=0, description="seconds")
    scheduler_pid_file: Path = Path("data/scheduler.pid")
    job_report_dir: Path | None = None
    max_message_bytes: int = Field(1_048_576, ge=1024, le=134_217_728, description="bytes")
    # Limits of every outbound HTTP call: the alerts' webhook, and the application's connectors.
    breaker_fail_max: int = Field(5, ge=1)
    breaker_reset_timeout: float = Field(30.0, gt=0, description="seconds")

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp_scheme(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("amqp", "amqps"):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return _with_valid_port(value)

    @field_validator("rabbitmq_urls")
    @classmethod
    def _amqp_list(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        urls = split_urls(value)
        for url in urls:
            if urlsplit(url).scheme not in ("amqp", "amqps"):
                raise ValueError(f"entry {urls.index(url) + 1} must be an amqp:// or amqps:// URL")
            _with_valid_port(url)
        return ";".join(urls)

    @field_validator("queue_type", mode="before")
    @classmethod
    def _lower_queue_type(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _first_of_several_urls(self) -> Settings:
        # Everything that needs one URL (the management API's host, redacted displays) reads RABBITMQ_URL.
        if self.rabbitmq_urls:
            self.rabbitmq_url = split_urls(self.rabbitmq_urls)[0]
        return self

    @property
    def amqp_urls(self) -> list[str]:
        """The RabbitMQ nodes to try, in order: ``RABBITMQ_URLS``, else ``RABBITMQ_URL`` alone."""
        return split_urls(self.rabbitmq_urls) if self.rabbitmq_urls else [self.rabbitmq_url]

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return _with_valid_port(value)

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        # Heroku sets postgres://, which SQLAlchemy 2 no longer accepts.
        if value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value[len("postgres://") :]
        elif value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://") :]
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value.startswith("postgresql"):
            from sqlalchemy.engine import make_url  # deferred: SQLAlchemy's own URL parser, for PostgreSQL URLs only

            try:
                make_url(value)
            except Exception:  # noqa: BLE001 - its messages quote the whole URL, password included
                raise ValueError("not a valid URL (check the port and that the password is URL-encoded)") from None
        return value

    @field_validator("scheduler_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # deferred: only when this runs

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _jobs_finish_within_consumer_timeout(self) -> Settings:
        # A prefetched message waits for the jobs ahead of it while unacked: keep
        # a job plus the wait well inside RabbitMQ's consumer timeout.
        if self.job_timeout * 3 > self.consumer_timeout:
            raise ValueError(
                f"JOB_TIMEOUT={self.job_timeout} must be at most a third of CONSUMER_TIMEOUT="
                f"{self.consumer_timeout} (RabbitMQ redelivers what is held unacked longer)"
            )
        return self

    @model_validator(mode="after")
    def _no_weak_secret_in_production(self) -> Settings:
        # A placeholder copied from deploy/ would let anyone who read the repository forge
        # tokens. The value is never repeated in the message. Unset is `serve`'s to refuse.
        from .secret_quality import weakness  # deferred: only when a secret is validated

        secret = self.api_jwt_secret.get_secret_value() if self.api_jwt_secret else ""
        reason = weakness(secret) if secret and self.app_env == "production" else None
        if reason:
            raise ValueError(f"API_JWT_SECRET is refused with APP_ENV=production: {reason}; set it to a "
                             "random string (openssl rand -hex 32)")
        return self

    @property
    def retry_max_backoff_ms(self) -> int:
        """The longest retry backoff, kept below the consumer timeout.

        A delayed message is held unacked by the worker's delay consumer
        until it is due; past RabbitMQ's consumer timeout the channel is
        closed and the message delivered twice.
        """
        ceiling = max(1.0, self.consumer_timeout * 0.5)
        return int(min(self.retry_max_backoff, ceiling) * 1000)


S = TypeVar("S", bound=Settings)


def split_urls(value: str) -> list[str]:
    """The URLs of a ``RABBITMQ_URLS`` value (comma, semicolon or whitespace separated)."""
    return [part for part in re.split(r"[,;\s]+", value.strip()) if part]


def _with_valid_port(value: str) -> str:
    # A port that is not a number fails here, naming the variable, not later in a traceback
    # quoting the URL; urllib's message names only the port.
    try:
        _ = urlsplit(value).port
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    return value


def _field_env_name(loc: tuple[int | str, ...]) -> str:
    name = str(loc[0]) if loc else "?"
    if name.lower() == "rabbitmq_urls":
        return "RABBITMQ_URLS"
    if name.lower() == "rabbitmq_url" or name.upper() in ("CLOUDAMQP_URL", "AMQP_URL"):
        return "RABBITMQ_URL"
    return name.upper()


def load_settings() -> Settings:
    """Read the settings, raising one :class:`ConfigError` line on a bad value."""
    return read_settings(Settings)


def read_settings(cls: type[S]) -> S:
    """Read ``cls`` (``Settings`` or an application's subclass) from the environment: one ConfigError line naming
    the variable on a bad value, a URL's or a secret's value never echoed."""
    try:
        return cls()
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across variables: its message names them
            raise ConfigError(f"invalid settings: {err['msg'].removeprefix('Value error, ')}") from None
        name = _field_env_name(tuple(err["loc"]))
        field = cls.model_fields.get(str(err["loc"][0]))
        if name.endswith(("_URL", "_URLS")) or (field is not None and "SecretStr" in str(field.annotation)):
            # A URL may carry a password (even one a mistake left unmasked): named, never echoed.
            raise ConfigError(f"invalid environment variable {name}: {err['msg']}") from None
        value = os.environ.get(name, err.get("input"))
        raise ConfigError(f"invalid environment variable {name}={redact(repr(value))}: {err['msg']}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once, then cached)."""
    return load_settings()
