from dataclasses import dataclass

import pytest

from shared.errors import ConfigError
from shared.puller_settings import PullerSettingsBase, parse_time
from shared.settings import Env

BASE = {
    "DATABASE_URL": "postgresql://u:dbpass@h/db",
    "AMQP_URL": "amqp://g:mqpass@h/",
    "BUSINESS_NUMBER_ID": "27600000000",
    "TURNIO_BEARER_TOKEN": "tok-secret",
}


@dataclass(frozen=True, repr=False)
class Example(PullerSettingsBase):
    port: int = 8100
    interval: float = 7.0

    @classmethod
    def from_env(cls, env: Env) -> "Example":
        return cls(**cls.shared_from_env(env, "EXAMPLE"))


def test_times_need_a_zone():
    assert parse_time("2025-01-01T00:00:00Z").isoformat() == "2025-01-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="timezone"):
        parse_time("2025-01-01T00:00:00")


def test_defaults_come_from_the_subclass_and_window_names_from_its_prefix():
    s = Example.from_env(Env(BASE))
    assert (s.port, s.interval, s.page_size, s.overlap) == (8100, 7.0, 1000, 300.0)
    s = Example.from_env(Env({**BASE, "EXAMPLE_INTERVAL": "2", "EXAMPLE_PAGE_SIZE": "10"}))
    assert (s.interval, s.page_size) == (2.0, 10)
    with pytest.raises(ConfigError, match="EXAMPLE_MAX_WINDOW"):
        Example.from_env(Env({**BASE, "EXAMPLE_MAX_WINDOW": "10"}))


def test_a_pod_name_makes_the_instance_readable():
    s = Example.from_env(Env({**BASE, "POD_NAME": "puller-0"}))
    assert s.instance.startswith("puller-0-")


def test_log_secrets_include_a_percent_encoded_password_decoded():
    s = Example.from_env(Env({**BASE, "AMQP_URL": "amqp://g:mq%2Fp%40ss@h/"}))
    assert {"tok-secret", "dbpass", "mq%2Fp%40ss", "mq/p@ss"} == set(s.secrets())


def test_the_repr_names_the_class_and_hides_secrets():
    s = Example.from_env(Env(BASE))
    text = repr(s)
    assert text.startswith("Example(") and "<hidden>" in text
    assert not any(secret in text for secret in s.secrets())
    assert s.budget_policy().limit == 60 and s.budget_policy().share is None
