-- A removed callback is kept, marked, so that its delivery log stays readable; saving the
-- same event again brings the row back. Keep the other database's twin of this file in step.
ALTER TABLE callback_endpoints ADD COLUMN removed_at TIMESTAMP;
