-- Callbacks (webhooks) to the merchant's projects, and each project's secret key.
-- Keep the PostgreSQL twin of this file in step.

-- The key that signs callbacks, encrypted at rest.
CREATE TABLE project_secrets (
    project_id BIGINT PRIMARY KEY REFERENCES projects (id),
    secret_encrypted TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Where each event type of a project goes, and whether it is on.
CREATE TABLE callback_endpoints (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    enabled BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (project_id, event)
);

-- The outbox: written in the same transaction as the change it reports, delivered by a
-- background worker with exponential backoff for up to three days.
CREATE TABLE callback_deliveries (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    event TEXT NOT NULL,
    url TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- pending, delivered or failed (gave up)
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    last_status_code INTEGER,
    last_error TEXT,
    created_at TIMESTAMP NOT NULL,
    delivered_at TIMESTAMP
);
CREATE INDEX callback_deliveries_due ON callback_deliveries (status, next_attempt_at);
CREATE INDEX callback_deliveries_payment ON callback_deliveries (payment_id);
