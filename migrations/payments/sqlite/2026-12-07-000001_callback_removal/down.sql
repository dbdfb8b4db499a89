ALTER TABLE callback_endpoints DROP COLUMN removed_at;
