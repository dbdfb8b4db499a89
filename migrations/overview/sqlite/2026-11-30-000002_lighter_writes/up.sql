-- What a purchase writes for the analytics, made lighter; the PostgreSQL twin says why.

DROP INDEX operations_completed;
CREATE INDEX operations_completed ON operations (completed_at) WHERE completed_at IS NOT NULL;

DROP TRIGGER analytics_payment_created;
CREATE TRIGGER analytics_payment_created AFTER INSERT ON payments
WHEN NEW.status <> 'processing'
BEGIN
    INSERT INTO analytics_changes (project_id, hour)
    VALUES (NEW.project_id, strftime('%Y-%m-%d %H:00:00', NEW.created_at));
END;
