-- What the pullers need beyond 0002: resumable sweeps and back-fills, the limit Turn announced,
-- and who wants the shared budget right now (fair share between the pullers).
-- depends: 0002_pullers

-- Where an interrupted sweep or back-fill resumes (windows before it are done).
ALTER TABLE ingestion_schedule ADD COLUMN position timestamptz;
ALTER TABLE backfill_requests ADD COLUMN position timestamptz;

-- The limit Turn announced in X-Ratelimit-Limit; when set it wins over the configured one.
ALTER TABLE rate_budget ADD COLUMN announced_limit integer CHECK (announced_limit > 0);

-- The last time each client asked for a request: a client with recent demand is "busy", and
-- capped clients (contacts) then get only their share of the window.
CREATE TABLE rate_budget_demand (
    business_number_id  text        NOT NULL,
    bucket              text        NOT NULL DEFAULT 'general',
    client              text        NOT NULL,
    last_demand_at      timestamptz NOT NULL,
    PRIMARY KEY (business_number_id, bucket, client)
);
