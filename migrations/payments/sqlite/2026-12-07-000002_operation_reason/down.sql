ALTER TABLE operations DROP COLUMN reason;
