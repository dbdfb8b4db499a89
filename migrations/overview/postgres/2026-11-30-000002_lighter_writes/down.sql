DROP TRIGGER analytics_payment_created ON payments;
CREATE TRIGGER analytics_payment_created AFTER INSERT ON payments
FOR EACH ROW EXECUTE FUNCTION analytics_payment_changed();
DROP INDEX operations_completed;
CREATE INDEX operations_completed ON operations (status, completed_at);
