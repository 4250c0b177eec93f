import pytest

from services.db_writer.settings import WriterSettings
from shared.settings import Env, configure_or_exit

BASE = {
    "DATABASE_URL": "postgresql://u:p@127.0.0.1:5432/db",
    "AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "BUSINESS_NUMBER_ID": "27600000000",
}


def test_defaults():
    settings = WriterSettings.from_env(Env(BASE))
    assert settings.port == 8001
    assert settings.batch_size == 500
    assert settings.batch_max_age == 0.2
    assert settings.prefetch >= settings.batch_size
    assert settings.backoff_initial < settings.backoff_max


def test_legacy_database_variables():
    env = {k: v for k, v in BASE.items() if k != "DATABASE_URL"}
    env |= {"DB_HOST": "db", "DB_NAME": "n", "DB_USER": "u", "DB_PASSWORD": "p@ss"}
    settings = WriterSettings.from_env(Env(env))
    assert settings.common.database_url == "postgresql://u:p%40ss@db:5432/n"


@pytest.mark.parametrize("missing", ["DATABASE_URL", "AMQP_URL", "BUSINESS_NUMBER_ID"])
def test_refuses_to_start_naming_the_missing_variable(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(SystemExit, match=missing):
        configure_or_exit(WriterSettings.from_env, env)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WRITER_BATCH_SIZE", "0"),
        ("WRITER_BATCH_SIZE", "many"),
        ("WRITER_BATCH_MAX_AGE", "-1"),
        ("WRITER_PREFETCH", "10"),
        ("WRITER_BACKOFF_MAX", "0.02"),
        ("PORT", "http"),
    ],
)
def test_malformed_values_name_their_variable(name, value):
    with pytest.raises(SystemExit, match=name):
        configure_or_exit(WriterSettings.from_env, {**BASE, name: value})


def test_repr_hides_passwords():
    settings = WriterSettings.from_env(Env(BASE))
    assert "u:p@" not in repr(settings)
