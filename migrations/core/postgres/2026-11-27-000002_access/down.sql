DROP TABLE recovery_codes;
DROP TABLE sms_codes;
ALTER TABLE sessions DROP COLUMN stage;
ALTER TABLE users DROP COLUMN locked_until;
ALTER TABLE users DROP COLUMN failed_attempts;
