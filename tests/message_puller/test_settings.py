import pytest

from services.message_puller.settings import PullerSettings
from shared.errors import ConfigError
from shared.settings import Env

BASE = {
    "DATABASE_URL": "postgresql://u:dbpass@h/db",
    "AMQP_URL": "amqp://g:mqpass@h/",
    "BUSINESS_NUMBER_ID": "27600000000",
    "TURNIO_BEARER_TOKEN": "tok-secret",
}


def test_defaults_follow_the_design():
    s = PullerSettings.from_env(Env(BASE))
    assert s.turnio_base_url == "https://whatsapp.turn.io"
    assert (s.port, s.rate_limit, s.rate_window, s.page_size, s.interval) == (
        8002,
        60,
        60.0,
        1000,
        30.0,
    )
    assert (s.recovery_every, s.recovery_span) == (86400, 3 * 86400)
    assert (s.audit_every, s.audit_span) == (7 * 86400, 30 * 86400)
    assert s.start_from is None


def test_the_token_is_required_and_never_shown():
    with pytest.raises(ConfigError, match="TURNIO_BEARER_TOKEN"):
        PullerSettings.from_env(Env({k: v for k, v in BASE.items() if k != "TURNIO_BEARER_TOKEN"}))
    s = PullerSettings.from_env(Env(BASE))
    assert "tok-secret" not in repr(s) and "dbpass" not in repr(s)
    assert {"tok-secret", "dbpass", "mqpass"} <= set(s.secrets())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PULL_PAGE_SIZE", "1001"),
        ("PULL_START_FROM", "2025-01-01T00:00:00"),
        ("TURNIO_RATE_LIMIT_MARGIN", "1.5"),
        ("TURNIO_BASE_URL", "ftp://x"),
        ("PULL_MAX_WINDOW", "10"),
    ],
)
def test_bad_values_name_their_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        PullerSettings.from_env(Env({**BASE, name: value}))


def test_start_from_takes_iso_with_z():
    s = PullerSettings.from_env(Env({**BASE, "PULL_START_FROM": "2025-01-01T00:00:00Z"}))
    assert s.start_from is not None and s.start_from.isoformat() == "2025-01-01T00:00:00+00:00"
