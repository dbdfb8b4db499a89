-- Analytics: rollups, their change log, time zones and saved boards. Keep the PostgreSQL
-- twin of this file in step.

-- Rollups of their payments per time zone in use (a day is the reader's day), per day and
-- per grouping set of the breakdown dimensions. `dims` says which of the dimension
-- columns hold a value (1 method, 2 country, 4 card brand, 8 status, 16 decline reason);
-- the others are ''. Payments are counted on the day they were created, money on the
-- day its operation succeeded. Status and decline cells count payments only.
CREATE TABLE analytics_cells (
    zone TEXT NOT NULL,
    dims SMALLINT NOT NULL,
    day DATE NOT NULL,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    currency TEXT NOT NULL,
    method TEXT NOT NULL,
    country TEXT NOT NULL,
    brand TEXT NOT NULL,
    status TEXT NOT NULL,
    decline TEXT NOT NULL,
    -- payments (not payouts) created that day, and how many of them the acquirer approved
    -- or declined (the others are still waiting for an answer)
    payments BIGINT NOT NULL,
    approved BIGINT NOT NULL,
    declined BIGINT NOT NULL,
    -- money moved that day: captures (sales, captures, recurring charges), refunds
    -- (refunds, reversals), chargebacks, payouts; counts of operations and amounts
    captures BIGINT NOT NULL,
    captured BIGINT NOT NULL,
    refunds BIGINT NOT NULL,
    refunded BIGINT NOT NULL,
    chargebacks BIGINT NOT NULL,
    charged_back BIGINT NOT NULL,
    payouts BIGINT NOT NULL,
    paid_out BIGINT NOT NULL,
    PRIMARY KEY (zone, dims, day, project_id, currency, method, country, brand, status, decline)
) WITHOUT ROWID;

-- The time zones rollups are kept for; `ready_at` is null until all of a zone's days
-- are built.
CREATE TABLE analytics_zones (
    zone TEXT PRIMARY KEY,
    ready_at TIMESTAMP
);

-- A user's named views of the analytics: the filters (as the page's query string) and
-- the charts shown.
CREATE TABLE analytics_boards (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    query TEXT NOT NULL,
    charts TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, name)
);

-- The hours (UTC) whose payments or operations changed since the rollups were computed,
-- written by the triggers below in the transaction of the change itself, so that none
-- is missed; the rollup job recomputes the days holding them and deletes the rows it
-- has seen (append only: concurrent writers never wait for each other here).
CREATE TABLE analytics_changes (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL,
    hour TIMESTAMP NOT NULL
);
-- The money of a day: successful operations by the time they completed.
CREATE INDEX operations_completed ON operations (status, completed_at);

CREATE TRIGGER analytics_payment_created AFTER INSERT ON payments
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    VALUES (NEW.project_id, strftime('%Y-%m-%d %H:00:00', NEW.created_at));
END;

CREATE TRIGGER analytics_payment_status AFTER UPDATE OF status ON payments
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    VALUES (NEW.project_id, strftime('%Y-%m-%d %H:00:00', NEW.created_at));
END;

CREATE TRIGGER analytics_operation_inserted AFTER INSERT ON operations
WHEN NEW.status = 'success'
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    SELECT project_id, strftime('%Y-%m-%d %H:00:00', NEW.completed_at) FROM payments WHERE id = NEW.payment_id;
END;

CREATE TRIGGER analytics_operation_succeeded AFTER UPDATE OF status ON operations
WHEN NEW.status = 'success' AND OLD.status <> 'success'
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    SELECT project_id, strftime('%Y-%m-%d %H:00:00', NEW.completed_at) FROM payments WHERE id = NEW.payment_id;
END;
