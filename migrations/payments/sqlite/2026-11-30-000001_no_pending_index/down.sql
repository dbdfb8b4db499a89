CREATE INDEX operations_pending ON operations (status, created_at);
