-- Callbacks that survive real receivers: each delivery goes to its endpoint's current
-- address, every attempt is logged, and a project's secret key can be rotated with both
-- keys signing for a while. Keep the PostgreSQL twin of this file in step.

-- The endpoint a delivery belongs to: the worker sends to the address the endpoint has
-- at the time of each attempt (the delivery's `url` is the address tried last).
ALTER TABLE callback_deliveries ADD COLUMN endpoint_id BIGINT REFERENCES callback_endpoints (id);
UPDATE callback_deliveries SET endpoint_id = (
    SELECT e.id FROM callback_endpoints e
    WHERE e.project_id = callback_deliveries.project_id AND e.event = callback_deliveries.event
);
-- A resend starts a new retry window without rewriting when the event happened.
ALTER TABLE callback_deliveries ADD COLUMN resent_at TIMESTAMP;
CREATE INDEX callback_deliveries_endpoint ON callback_deliveries (endpoint_id, id);

-- One row per attempt, test events included (no delivery): when, where, what came back.
CREATE TABLE callback_attempts (
    id INTEGER PRIMARY KEY,
    endpoint_id BIGINT NOT NULL REFERENCES callback_endpoints (id),
    delivery_id BIGINT REFERENCES callback_deliveries (id),
    attempted_at TIMESTAMP NOT NULL,
    url TEXT NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT,
    response_excerpt TEXT
);
CREATE INDEX callback_attempts_delivery ON callback_attempts (delivery_id, id);
CREATE INDEX callback_attempts_endpoint ON callback_attempts (endpoint_id, id);

-- The key a rotation replaced, which still signs until `previous_until`.
ALTER TABLE project_secrets ADD COLUMN previous_encrypted TEXT;
ALTER TABLE project_secrets ADD COLUMN previous_until TIMESTAMP;
