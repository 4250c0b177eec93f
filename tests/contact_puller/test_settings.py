import pytest

from services.contact_puller.settings import ContactSettings
from shared.errors import ConfigError
from shared.settings import Env

BASE = {
    "DATABASE_URL": "postgresql://u:dbpass@h/db",
    "AMQP_URL": "amqp://g:mqpass@h/",
    "BUSINESS_NUMBER_ID": "27600000000",
    "TURNIO_BEARER_TOKEN": "tok-secret",
}


def test_defaults():
    s = ContactSettings.from_env(Env(BASE))
    assert (s.port, s.interval, s.budget_share, s.page_size) == (8003, 3600.0, 0.333, 1000)
    assert (s.rate_limit, s.rate_window, s.lease_ttl) == (60, 60.0, 15.0)
    assert (s.windows, s.concurrency, s.cursor_stagger) == (4, 2, 1.0)
    assert s.start_from is None


def test_shared_names_mean_the_same_as_for_the_message_puller():
    s = ContactSettings.from_env(
        Env(
            {
                **BASE,
                "TURNIO_BASE_URL": "http://sim:1",
                "TURNIO_RATE_LIMIT": "600",
                "TURNIO_RATE_WINDOW": "30",
                "LEASE_TTL": "5",
                "CONTACTS_BUDGET_SHARE": "0.5",
                "CONTACTS_WINDOWS": "8",
                "CONTACTS_START_FROM": "2025-01-01T00:00:00Z",
            }
        )
    )
    assert (s.turnio_base_url, s.rate_limit, s.rate_window, s.lease_ttl) == (
        "http://sim:1",
        600,
        30.0,
        5.0,
    )
    assert s.start_from is not None
    assert (s.budget_share, s.windows, s.start_from.year) == (0.5, 8, 2025)


def test_the_token_is_required_and_never_shown():
    with pytest.raises(ConfigError, match="TURNIO_BEARER_TOKEN"):
        ContactSettings.from_env(Env({k: v for k, v in BASE.items() if "TOKEN" not in k}))
    s = ContactSettings.from_env(Env(BASE))
    assert "tok-secret" not in repr(s) and "dbpass" not in repr(s) and "mqpass" not in repr(s)
    assert set(s.secrets()) == {"tok-secret", "dbpass", "mqpass"}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONTACTS_BUDGET_SHARE", "0"),
        ("CONTACTS_BUDGET_SHARE", "1.5"),
        ("CONTACTS_PAGE_SIZE", "1001"),
        ("CONTACTS_WINDOWS", "0"),
        ("CONTACTS_INTERVAL", "soon"),
        ("CONTACTS_START_FROM", "2025-01-01"),
        ("CONTACTS_MAX_WINDOW", "10"),
        ("TURNIO_BASE_URL", "ftp://x"),
    ],
)
def test_malformed_values_name_their_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        ContactSettings.from_env(Env({**BASE, name: value}))
