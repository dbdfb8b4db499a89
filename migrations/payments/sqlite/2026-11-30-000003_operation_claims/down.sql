ALTER TABLE operations DROP COLUMN idempotency_key;
ALTER TABLE operations DROP COLUMN idempotency_scope;
