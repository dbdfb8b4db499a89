DROP TRIGGER analytics_payment_created;
CREATE TRIGGER analytics_payment_created AFTER INSERT ON payments
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    VALUES (NEW.project_id, strftime('%Y-%m-%d %H:00:00', NEW.created_at));
END;
DROP INDEX operations_completed;
CREATE INDEX operations_completed ON operations (status, completed_at);
