import itertools
from datetime import UTC, datetime, timedelta

from services.contact_puller.plan import partition, run_range
from shared.window import Window

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_a_run_reads_from_overlap_before_the_checkpoint_to_the_horizon():
    now = T0 + timedelta(hours=1, microseconds=700_000)
    window = run_range(T0 + timedelta(seconds=30.5), now, overlap=300, safety_lag=120)
    assert window == Window(T0 - timedelta(seconds=270), T0 + timedelta(seconds=3480))


def test_nothing_to_read_when_the_checkpoint_is_within_the_safety_lag():
    assert run_range(T0, T0 + timedelta(seconds=100), overlap=0, safety_lag=120) is None


def test_partition_covers_the_window_without_gaps_or_overlaps():
    window = Window(T0, T0 + timedelta(days=1, seconds=7))
    parts = partition(window, 4, 10 * 86400)
    assert len(parts) == 4
    assert parts[0].start == window.start and parts[-1].until == window.until
    assert all(a.until == b.start for a, b in itertools.pairwise(parts))
    assert all(p.start.microsecond == 0 for p in parts)
    spans = [p.seconds for p in parts]
    assert max(spans) - min(spans) <= 1


def test_partition_respects_the_widest_window():
    parts = partition(Window(T0, T0 + timedelta(days=10)), 2, 86400)
    assert len(parts) == 10
    assert all(p.seconds <= 86400 for p in parts)


def test_a_short_window_gives_fewer_parts_of_at_least_a_second():
    parts = partition(Window(T0, T0 + timedelta(seconds=2, microseconds=500)), 8, 100)
    assert [p.seconds for p in parts] == [1, 1.0005]


def test_an_unaligned_start_is_floored_to_the_second():
    parts = partition(Window(T0 + timedelta(microseconds=5), T0 + timedelta(seconds=10)), 2, 100)
    assert parts[0].start == T0
