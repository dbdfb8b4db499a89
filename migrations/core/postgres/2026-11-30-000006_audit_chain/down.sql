DROP TABLE audit_chain;
ALTER TABLE audit_events DROP COLUMN seal;
