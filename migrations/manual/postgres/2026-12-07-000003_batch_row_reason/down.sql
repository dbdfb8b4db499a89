ALTER TABLE batch_rows DROP COLUMN reason;
