import pytest

from shared.errors import ConfigError
from shared.settings import CommonSettings, Env, redact_url, url_secrets

BASE = {
    "DATABASE_URL": "postgresql://u:hunter2secret@db:5432/app",
    "AMQP_URL": "amqp://guest:rabbitpass@mq:5672/",
    "BUSINESS_NUMBER_ID": "27600000000",
}


def test_reads_common_settings():
    settings = CommonSettings.from_env(Env(BASE))
    assert settings.database_url == BASE["DATABASE_URL"]
    assert settings.business_number_id == "27600000000"
    assert settings.log_level == "INFO"


@pytest.mark.parametrize("missing", sorted(BASE))
def test_missing_variable_is_named(missing):
    env = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError) as caught:
        CommonSettings.from_env(Env(env))
    assert caught.value.variable == missing


def test_legacy_db_variables_build_a_url_with_escaped_password():
    env = {k: v for k, v in BASE.items() if k != "DATABASE_URL"}
    env |= {"DB_HOST": "pg", "DB_NAME": "turn", "DB_USER": "app", "DB_PASSWORD": "p@ss/word"}
    settings = CommonSettings.from_env(Env(env))
    assert settings.database_url == "postgresql://app:p%40ss%2Fword@pg:5432/turn"


def test_url_secrets_are_the_passwords_as_written_and_as_meant():
    env = {k: v for k, v in BASE.items() if k != "DATABASE_URL"}
    env |= {"DB_HOST": "pg", "DB_NAME": "turn", "DB_USER": "app", "DB_PASSWORD": 'pa"ss/w@rd'}
    settings = CommonSettings.from_env(Env(env))
    # A library error may quote the password either way; both must be scrubbed.
    assert url_secrets(settings.database_url, settings.amqp_url) == [
        "pa%22ss%2Fw%40rd",
        'pa"ss/w@rd',
        "rabbitpass",
    ]
    assert url_secrets("amqp://guest@mq/", "postgresql://db/app", "") == []


def test_legacy_db_variables_name_the_missing_one():
    env = {k: v for k, v in BASE.items() if k != "DATABASE_URL"} | {"DB_HOST": "pg"}
    with pytest.raises(ConfigError, match="DB_NAME"):
        CommonSettings.from_env(Env(env))


@pytest.mark.parametrize(
    ("name", "value"),
    [("LOG_LEVEL", "LOUD"), ("DATABASE_URL", "mysql://x"), ("AMQP_URL", "http://x")],
)
def test_malformed_values_are_refused_by_name(name, value):
    with pytest.raises(ConfigError) as caught:
        CommonSettings.from_env(Env(BASE | {name: value}))
    assert caught.value.variable == name


def test_integer_and_seconds_validation():
    env = Env({"N": "abc", "S": "-1"})
    with pytest.raises(ConfigError, match="N: must be a whole number"):
        env.integer("N", 3)
    with pytest.raises(ConfigError, match="S: must be at least 0"):
        env.seconds("S", 1.0)


def test_secret_list_splits_and_trims():
    assert Env({"S": " a , b ,"}).secret_list("S") == ("a", "b")
    with pytest.raises(ConfigError, match="S"):
        Env({"S": " , "}).secret_list("S")


def test_repr_never_shows_passwords():
    text = repr(CommonSettings.from_env(Env(BASE)))
    assert "hunter2secret" not in text and "rabbitpass" not in text
    assert redact_url("amqp://u:pw@h/") == "amqp://u:***@h/"
