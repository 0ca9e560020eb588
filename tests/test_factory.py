import pytest

from webapp.config import Config, ConfigError, database_url


def test_production_start_refuses_missing_secrets():
    config = Config.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(ConfigError, match="missing SECRET_KEY, FANOUT_ENCRYPTION_KEYS"):
        config.validate()


def test_demo_mode_starts_without_secrets():
    Config.from_env({"FANOUT_DEMO": "1", "REDIS_URL": "redis://127.0.0.1:6379/0"}).validate()


def test_redis_url_is_always_required():
    with pytest.raises(ConfigError, match="REDIS_URL is not set"):
        Config.from_env({"FANOUT_DEMO": "1"}).validate()


def test_bad_numbers_are_named():
    with pytest.raises(ConfigError, match="PORT must be a whole number"):
        Config.from_env({"PORT": "eighty"})


@pytest.mark.parametrize(
    "given, expected",
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
    ],
)
def test_database_url(given, expected):
    assert database_url(given) == expected


def test_testing_app(app):
    assert app.testing
    assert app.config["FANOUT_ENCRYPTION_KEYS"]
