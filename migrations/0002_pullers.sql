-- State the pullers keep in PostgreSQL, keyed by business number so more numbers are config.
-- depends: 0001_core

-- Forward-only checkpoint per stream (messages, contacts).
CREATE TABLE ingestion_state (
    business_number_id  text        NOT NULL,
    stream              text        NOT NULL,
    checkpoint          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_number_id, stream)
);

-- Last run of each sweep (recovery, audit) per stream, so a restart neither repeats nor skips.
CREATE TABLE ingestion_schedule (
    business_number_id  text        NOT NULL,
    stream              text        NOT NULL,
    sweep               text        NOT NULL,
    last_started_at     timestamptz,
    last_finished_at    timestamptz,
    PRIMARY KEY (business_number_id, stream, sweep)
);

-- Back-fills asked for by an operator; the running singleton executes them.
CREATE TABLE backfill_requests (
    id                  bigserial PRIMARY KEY,
    business_number_id  text        NOT NULL,
    stream              text        NOT NULL,
    from_ts             timestamptz NOT NULL,
    until_ts            timestamptz NOT NULL,
    requested_at        timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    error               text,
    CHECK (from_ts < until_ts)
);
CREATE INDEX backfill_requests_pending ON backfill_requests (business_number_id, stream, id)
    WHERE finished_at IS NULL;

-- Singleton leases: one holder per name until expires_at.
CREATE TABLE leases (
    name                text        PRIMARY KEY,         -- e.g. '<number>:messages'
    holder              text        NOT NULL,
    acquired_at         timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL
);

-- The shared rate budget: one row per (number, bucket) holding the limit in force, and one
-- row per request granted, so "at most N in any sliding window" is a count.
CREATE TABLE rate_budget (
    business_number_id  text        NOT NULL,
    bucket              text        NOT NULL DEFAULT 'general',
    limit_per_window    integer     NOT NULL,
    window_seconds      double precision NOT NULL,
    blocked_until       timestamptz,                     -- set by a 429's Retry-After
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (business_number_id, bucket)
);

CREATE TABLE rate_budget_grants (
    id                  bigserial PRIMARY KEY,
    business_number_id  text        NOT NULL,
    bucket              text        NOT NULL DEFAULT 'general',
    client              text        NOT NULL,            -- which puller drew it
    granted_at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX rate_budget_grants_window
    ON rate_budget_grants (business_number_id, bucket, granted_at);
