"""The contact puller's Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LAG = Gauge(
    "turnio_contact_puller_lag_seconds",
    "Seconds between now and the checkpoint (the newest updated_at of a complete run)",
)
CHECKPOINT = Gauge(
    "turnio_contact_puller_checkpoint_timestamp_seconds",
    "The checkpoint as a Unix time",
)
LEASE_HELD = Gauge(
    "turnio_contact_puller_lease_held",
    "1 while this replica holds the singleton lease and pulls; 0 while it stands by",
)
CONTACTS_SCANNED = Counter(
    "turnio_contact_puller_contacts_scanned_total",
    "Contacts read from Turn's Data Export",
    ["run"],  # incremental | backfill
)
CONTACTS_PUBLISHED = Counter(
    "turnio_contact_puller_contacts_published_total",
    "Contacts published to the broker and confirmed",
    ["run"],
)
API_REQUESTS = Counter(
    "turnio_contact_puller_api_requests_total",
    "Requests to Turn by answer status ('error' when no answer came)",
    ["status"],
)
RATE_LIMITED = Counter(
    "turnio_contact_puller_rate_limited_total",
    "Answers 429 from Turn (should stay 0: the budget keeps below the limit)",
)
BUDGET_WAIT = Counter(
    "turnio_contact_puller_budget_wait_seconds_total",
    "Seconds spent waiting for the shared rate budget (the fair share included)",
)
FORBIDDEN_RETRIES = Counter(
    "turnio_contact_puller_cursor_forbidden_retries_total",
    "Contact cursor creations answered 403 and tried again",
)
CURSOR_RECREATIONS = Counter(
    "turnio_contact_puller_cursor_recreations_total",
    "Cursors created again from the last seen updated_at",
    ["reason"],  # expired | unavailable
)
WINDOW_SPLITS = Counter(
    "turnio_contact_puller_window_splits_total",
    "Windows split in halves because Turn kept failing on them",
)
RUNS = Counter(
    "turnio_contact_puller_runs_total",
    "Runs (every window read) and back-fill requests finished",
    ["run"],  # incremental | backfill
)
ERRORS = Counter(
    "turnio_contact_puller_errors_total",
    "Runs that failed and were retried later, by category",
    ["category"],
)
