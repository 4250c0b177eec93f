"""The writer's Prometheus metrics, defined once per process."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

BATCH_DELIVERIES = Histogram(
    "turnio_writer_batch_deliveries",
    "Broker messages per flushed batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
BATCH_EVENTS = Histogram(
    "turnio_writer_batch_events",
    "Distinct events per flushed batch, after de-duplication within the batch.",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
)
FLUSH_SECONDS = Histogram(
    "turnio_writer_flush_seconds",
    "Time to commit one batch (including retries while PostgreSQL is away) and ack it.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ROWS = Counter(
    "turnio_writer_rows_total",
    "Rows by table and outcome: inserted, updated (newer or fuller copy), duplicate.",
    ["table", "outcome"],
)
EVENTS = Counter("turnio_writer_events_total", "Events exploded from bodies, by type.", ["type"])
DELIVERIES = Counter(
    "turnio_writer_deliveries_total",
    "Broker messages settled, by outcome: acked, dead_lettered, requeued.",
    ["outcome"],
)
DEAD_LETTERED = Counter(
    "turnio_writer_dead_lettered_total",
    "Broker messages dead-lettered, by reason category.",
    ["reason"],
)
DEAD_LETTER_FAILURES = Counter(
    "turnio_writer_dead_letter_failures_total",
    "Dead letters that could not be published (the original is requeued instead).",
)
DB_RETRIES = Counter(
    "turnio_writer_db_retries_total", "Batch writes retried because PostgreSQL was unavailable."
)
DB_UP = Gauge("turnio_writer_database_up", "1 when the last PostgreSQL contact succeeded.")
