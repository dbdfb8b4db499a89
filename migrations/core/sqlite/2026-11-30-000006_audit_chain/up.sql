-- The audit log as evidence: each row is sealed, in id order, with an HMAC of the row
-- and the seal of the row before it (under a key derived from the installation's key,
-- which the database does not hold). Editing or deleting a sealed row breaks the chain
-- at that row; `dashboard audit verify` finds it. `audit_chain` holds the newest seal,
-- so that deleting the newest rows is found as well.
ALTER TABLE audit_events ADD COLUMN seal TEXT;
CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id BIGINT NOT NULL,
    last_seal TEXT NOT NULL,
    events BIGINT NOT NULL
);
