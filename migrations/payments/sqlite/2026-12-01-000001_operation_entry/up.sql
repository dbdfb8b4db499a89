-- How an operation was entered when a person entered it by hand ('manual': the Manual
-- payments forms and their API twins; 'batch': a row of a batch file). The registry of
-- manual operations lists these, newest first.
ALTER TABLE operations ADD COLUMN entry TEXT;
CREATE INDEX operations_entered ON operations (entry, id) WHERE entry IS NOT NULL;
