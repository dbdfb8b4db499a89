-- A refund row's reason (the file's `reason` column), kept with the refund it makes. Keep
-- the other database's twin of this file in step.
ALTER TABLE batch_rows ADD COLUMN reason TEXT;
