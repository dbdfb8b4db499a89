-- The idempotency key an operation was asked with (its scope and key), written with the
-- operation, so that when its answer is lost (the server stopped while the acquirer was
-- asked) the recovery job stores the answer for that key too: a retry with the key then
-- sees the result instead of "still running" for ever. No index: the recovery reads the
-- key from the operation and looks it up by the keys' own unique index.
ALTER TABLE operations ADD COLUMN idempotency_scope TEXT;
ALTER TABLE operations ADD COLUMN idempotency_key TEXT;
