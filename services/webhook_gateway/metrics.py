"""The gateway's Prometheus metrics, defined once per process.

Label children are resolved here, once, so the request path only increments or observes.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from services.webhook_gateway.signature import REASONS

OUTCOMES = ("accepted", "unauthorized", "too_large", "unavailable")

REQUESTS = Counter(
    "turnio_gateway_requests_total",
    "Webhook requests answered, by outcome.",
    ["outcome"],
)
SIGNATURE_FAILURES = Counter(
    "turnio_gateway_signature_failures_total",
    "Webhook requests refused with 401, by why the signature did not verify.",
    ["reason"],
)
PUBLISH_SECONDS = Histogram(
    "turnio_gateway_publish_seconds",
    "From publish to the broker's confirm (or the failure), per webhook.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0),
)
BODY_BYTES = Histogram(
    "turnio_gateway_body_bytes",
    "Size of verified webhook bodies.",
    buckets=(256, 512, 1024, 2048, 4096, 8192, 16384, 65536, 262144, 1048576),
)

for _outcome in OUTCOMES:
    REQUESTS.labels(_outcome)
for _reason in REASONS:
    SIGNATURE_FAILURES.labels(_reason)

ACCEPTED = REQUESTS.labels("accepted")
UNAUTHORIZED = REQUESTS.labels("unauthorized")
TOO_LARGE = REQUESTS.labels("too_large")
UNAVAILABLE = REQUESTS.labels("unavailable")
SIGNATURE_FAILURE = {reason: SIGNATURE_FAILURES.labels(reason) for reason in REASONS}
