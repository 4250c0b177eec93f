from datetime import UTC, datetime, timedelta

import pytest

from shared.window import Window, horizon

NOW = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
WHOLE = NOW.replace(microsecond=0)
H = timedelta(hours=1)


def test_until_is_never_in_the_future_and_on_a_whole_second():
    assert horizon(NOW, 120) == datetime(2026, 3, 1, 11, 58, 0, tzinfo=UTC)
    assert horizon(NOW, 0) <= NOW


def test_halves_meet_on_a_whole_second():
    first, second = Window(NOW - H, NOW).halves()
    assert first.until == second.start
    assert first.until.microsecond == 0
    with pytest.raises(ValueError):
        Window(WHOLE, WHOLE + timedelta(seconds=1)).halves()
