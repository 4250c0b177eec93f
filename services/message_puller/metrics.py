"""The message puller's Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAG = Gauge(
    "turnio_message_puller_lag_seconds",
    "Seconds between now and the checkpoint (everything before it is published)",
)
CHECKPOINT = Gauge(
    "turnio_message_puller_checkpoint_timestamp_seconds",
    "The checkpoint as a Unix time",
)
LEASE_HELD = Gauge(
    "turnio_message_puller_lease_held",
    "1 while this replica holds the singleton lease and pulls; 0 while it stands by",
)
ITEMS_SCANNED = Counter(
    "turnio_message_puller_items_scanned_total",
    "Message items read from Turn's Data Export",
    ["run"],  # incremental | recovery | audit | backfill
)
ITEMS_PUBLISHED = Counter(
    "turnio_message_puller_items_published_total",
    "Message items published to the broker and confirmed",
    ["run"],
)
API_REQUESTS = Counter(
    "turnio_message_puller_api_requests_total",
    "Requests to Turn by answer status ('error' when no answer came)",
    ["status"],
)
RATE_LIMITED = Counter(
    "turnio_message_puller_rate_limited_total",
    "Answers 429 from Turn (should stay 0: the budget keeps below the limit)",
)
CURSOR_RECREATIONS = Counter(
    "turnio_message_puller_cursor_recreations_total",
    "Cursors created again from the last seen time",
    ["reason"],  # expired | unavailable
)
WINDOW_SPLITS = Counter(
    "turnio_message_puller_window_splits_total",
    "Windows split in halves because Turn kept failing on them",
)
BUDGET_WAIT = Counter(
    "turnio_message_puller_budget_wait_seconds_total",
    "Seconds spent waiting for the shared rate budget",
)
SWEEP_RUNS = Counter(
    "turnio_message_puller_sweep_runs_total",
    "Sweeps and back-fills finished",
    ["sweep"],  # recovery | audit | backfill
)
ERRORS = Counter(
    "turnio_message_puller_errors_total",
    "Pull attempts that failed and were retried later, by category",
    ["category"],
)
