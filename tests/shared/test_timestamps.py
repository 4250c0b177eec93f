"""Turn's times, read leniently."""

from datetime import UTC, datetime

from shared.timestamps import epoch_time, iso_time


def test_timestamps():
    assert epoch_time("1735732800") == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert epoch_time(1735732800) == datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert epoch_time("not a time") is None
    assert epoch_time("1e30") is None
    assert epoch_time(None) is None and epoch_time(True) is None
    assert iso_time("2025-01-01T12:05:41.000000Z") == datetime(2025, 1, 1, 12, 5, 41, tzinfo=UTC)
    assert iso_time("2025-01-01T12:05:41") == datetime(2025, 1, 1, 12, 5, 41, tzinfo=UTC)
    assert iso_time("yesterday") is None and iso_time(None) is None


def test_epoch_values_past_the_platforms_range_are_none_not_an_oserror():
    assert epoch_time("100000000000000000") is None
    assert epoch_time("nan") is None and epoch_time("inf") is None


def test_fractional_epoch_seconds_are_read():
    assert epoch_time("1735732800.5") == datetime(2025, 1, 1, 12, 0, 0, 500000, tzinfo=UTC)
