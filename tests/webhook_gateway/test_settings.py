import pytest

from services.webhook_gateway.settings import GatewaySettings
from shared.errors import ConfigError
from shared.settings import Env

BASE = {
    "AMQP_URL": "amqp://user:amqp-pass-123@rabbit:5672/",
    "BUSINESS_NUMBER_ID": "27600000000",
    "TURNIO_WEBHOOK_SECRET": "first-secret, second-secret",
}


def build(**changes: str | None) -> GatewaySettings:
    env = {**BASE, **changes}
    return GatewaySettings.from_env(Env({k: v for k, v in env.items() if v is not None}))


def test_defaults():
    settings = build()
    assert settings.webhook_secrets == ("first-secret", "second-secret")
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.publish_confirm_timeout == 2.0
    assert settings.common.database_url == ""  # the gateway never touches PostgreSQL


def test_overrides():
    settings = build(
        PORT="9000",
        HOST="127.0.0.1",
        WEBHOOK_MAX_BODY_BYTES="2048",
        PUBLISH_CONFIRM_TIMEOUT="0.5",
        RETRY_AFTER="3",
        LOG_LEVEL="debug",
    )
    assert (settings.port, settings.host, settings.max_body_bytes) == (9000, "127.0.0.1", 2048)
    assert (settings.publish_confirm_timeout, settings.retry_after_seconds) == (0.5, 3)
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("TURNIO_WEBHOOK_SECRET", None),
        ("TURNIO_WEBHOOK_SECRET", " , "),
        ("AMQP_URL", None),
        ("AMQP_URL", "http://rabbit"),
        ("BUSINESS_NUMBER_ID", None),
        ("PORT", "eighty"),
        ("WEBHOOK_MAX_BODY_BYTES", "0"),
        ("PUBLISH_CONFIRM_TIMEOUT", "5"),  # Turn would already have given up
        ("PUBLISH_CONFIRM_TIMEOUT", "soon"),
    ],
)
def test_a_bad_variable_is_named(variable, value):
    with pytest.raises(ConfigError) as caught:
        build(**{variable: value})
    assert caught.value.variable == variable


def test_repr_and_log_secrets():
    settings = build()
    assert "first-secret" not in repr(settings)
    assert "amqp-pass-123" not in repr(settings)
    assert set(settings.secrets()) == {"first-secret", "second-secret", "amqp-pass-123"}


def test_log_secrets_include_a_percent_encoded_password_decoded():
    settings = build(AMQP_URL="amqp://user:amqp%22pass%5C@rabbit:5672/")
    assert {"amqp%22pass%5C", 'amqp"pass\\'} <= set(settings.secrets())
