ALTER TABLE project_secrets DROP COLUMN previous_until;
ALTER TABLE project_secrets DROP COLUMN previous_encrypted;
DROP TABLE callback_attempts;
DROP INDEX callback_deliveries_endpoint;
ALTER TABLE callback_deliveries DROP COLUMN resent_at;
ALTER TABLE callback_deliveries DROP COLUMN endpoint_id;
