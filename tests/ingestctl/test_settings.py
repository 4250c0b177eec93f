"""ingestctl reads the services' variables; the management URL defaults beside the broker."""

from __future__ import annotations

import pytest

from ingestctl.settings import CtlSettings, management_url_for
from shared.errors import ConfigError
from shared.settings import Env


def test_management_url_is_derived_from_the_amqp_url() -> None:
    assert management_url_for("amqp://u:p%40ss@rabbit:5672/prod") == "http://u:p%40ss@rabbit:15672/"
    assert management_url_for("amqps://u:p@rabbit/") == "https://u:p@rabbit:15671/"
    assert management_url_for("amqp://rabbit") == "http://guest:guest@rabbit:15672/"


def test_explicit_management_url_wins_and_vhost_comes_from_the_path() -> None:
    env = Env({"AMQP_URL": "amqp://u:p@r:5672/%2Fprod", "RABBITMQ_MANAGEMENT_URL": "http://m/"})
    settings = CtlSettings.from_env(env, broker=True)
    assert settings.management_url == "http://m/"
    assert settings.vhost == "/prod"
    assert CtlSettings.from_env(Env({"AMQP_URL": "amqp://r/"}), broker=True).vhost == "/"
    assert "p@" not in repr(settings)


def test_each_command_needs_only_its_variables() -> None:
    assert CtlSettings.from_env(Env({"DATABASE_URL": "postgresql://h/d"}), database=True)
    with pytest.raises(ConfigError, match="AMQP_URL"):
        CtlSettings.from_env(Env({}), broker=True)
    with pytest.raises(ConfigError, match="BUSINESS_NUMBER_ID"):
        CtlSettings.from_env(Env({"DATABASE_URL": "postgresql://h/d"}), database=True, number=True)
