DROP INDEX operations_entered;
ALTER TABLE operations DROP COLUMN entry;
