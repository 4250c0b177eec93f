import itertools
from datetime import UTC, datetime, timedelta

from services.message_puller.windows import incremental, next_chunk, split, sweep_range
from shared.window import Window, horizon

NOW = datetime(2026, 3, 1, 12, 0, 0, 654321, tzinfo=UTC)
H = timedelta(hours=1)


def test_incremental_window_reaches_back_by_the_overlap():
    window, caught_up = incremental(NOW - H, NOW, overlap=300, safety_lag=120, max_window=86400)
    assert window == Window(
        NOW.replace(microsecond=0) - H - timedelta(minutes=5), horizon(NOW, 120)
    )
    assert caught_up


def test_a_lagging_checkpoint_gets_a_capped_window_and_is_not_caught_up():
    window, caught_up = incremental(
        NOW - 30 * 24 * H, NOW, overlap=300, safety_lag=120, max_window=86400
    )
    assert window is not None
    assert window.seconds == 86400
    assert not caught_up


def test_nothing_to_read_when_the_checkpoint_is_at_the_horizon():
    window, caught_up = incremental(NOW, NOW, overlap=0, safety_lag=120, max_window=86400)
    assert window is None and caught_up


def test_wide_ranges_split_into_adjacent_windows():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    windows = split(start, start + timedelta(days=2, hours=1), 86400)
    assert [w.seconds for w in windows] == [86400, 86400, 3600]
    assert all(a.until == b.start for a, b in itertools.pairwise(windows))
    assert split(start, start, 86400) == []


def test_jobs_resume_from_their_position():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_chunk(start + H, start + 3 * H, 3600) == Window(start + H, start + 2 * H)
    assert next_chunk(start + 3 * H, start + 3 * H, 3600) is None


def test_sweeps_stop_at_the_checkpoint():
    start, until = sweep_range(NOW, NOW - 2 * H, span=3 * 86400, safety_lag=120)
    assert start == NOW.replace(microsecond=0) - timedelta(days=3)
    assert until == (NOW - 2 * H).replace(microsecond=0)
