import pytest

from broker_jobs.app.settings import AppSettings
from broker_jobs.errors import ConfigError
from broker_jobs.settings import load_settings, read_settings


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("APP_ENV", "staging"),
        ("RABBITMQ_URL", "http://localhost"),
        ("REDIS_URL", "memcached://x"),
        ("DATABASE_URL", "mysql://x"),
        ("SCHEDULER_TIMEZONE", "Mars/Olympus"),
        ("ETL_CONCURRENCY", "zero"),
        ("ETL_CONCURRENCY", "0"),
        ("ETL_BATCH_SIZE", "-5"),
        ("JOB_TIMEOUT", "soon"),
        ("MAX_RETRIES", "many"),
        ("METRICS_PORT", "70000"),
        ("API_PORT", "http"),
        ("LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_environment_value_names_the_variable(settings_env, variable, value):
    settings_env.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        # The built-in jobs' settings read the framework's too: one call covers both classes.
        read_settings(AppSettings)
    message = str(caught.value)
    assert variable in message
    assert "\n" not in message
    assert caught.value.exit_code == 2


def test_defaults_match_the_documented_table(settings_env):
    for name in ("APP_ENV", "RABBITMQ_URL", "ETL_CONCURRENCY", "ETL_BATCH_SIZE", "MAX_RETRIES",
                 "METRICS_PORT", "API_PORT", "SCHEDULER_TIMEZONE", "JOB_TIMEOUT"):
        settings_env.delenv(name, raising=False)
    settings = load_settings()
    assert settings.app_env == "development"
    assert settings.rabbitmq_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert (settings.etl_concurrency, settings.max_retries) == (2, 3)
    assert read_settings(AppSettings).etl_batch_size == 50
    assert (settings.metrics_port, settings.api_port) == (9191, 8000)
    assert settings.scheduler_timezone == "UTC"


def test_heroku_style_variables_are_accepted(settings_env):
    settings_env.delenv("RABBITMQ_URL", raising=False)
    settings_env.setenv("CLOUDAMQP_URL", "amqps://u:p@host.example/vh")
    settings_env.setenv("DATABASE_URL", "postgres://u:p@db.example:5432/app")
    settings = load_settings()
    assert settings.rabbitmq_url == "amqps://u:p@host.example/vh"
    assert settings.database_url == "postgresql+psycopg://u:p@db.example:5432/app"


def test_retry_backoff_never_exceeds_the_consumer_timeout(settings_env):
    settings_env.setenv("RETRY_MAX_BACKOFF", "86400")
    settings_env.setenv("CONSUMER_TIMEOUT", "600")
    settings_env.setenv("JOB_TIMEOUT", "200")
    assert load_settings().retry_max_backoff_ms <= 600 * 1000


def test_a_job_timeout_close_to_the_consumer_timeout_is_refused(settings_env):
    settings_env.setenv("CONSUMER_TIMEOUT", "600")
    settings_env.setenv("JOB_TIMEOUT", "500")
    with pytest.raises(ConfigError, match="JOB_TIMEOUT=500 must be at most a third of CONSUMER_TIMEOUT=600"):
        load_settings()
