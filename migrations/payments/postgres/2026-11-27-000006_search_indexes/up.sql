-- Searches by card last 4 and by e-mail keep the registry's order (newest first), so
-- their index holds the sort key too: the database reads only the rows of one page.
DROP INDEX payments_last4;
DROP INDEX payments_email;
DROP INDEX payments_order;
CREATE INDEX payments_last4 ON payments (company_id, card_last4, created_at, id);
CREATE INDEX payments_email ON payments (company_id, customer_email, created_at, id);
CREATE INDEX payments_order ON payments (company_id, merchant_order_id, created_at, id);
CREATE INDEX payments_first6 ON payments (company_id, card_first6, created_at, id);
CREATE INDEX payments_status_time ON payments (company_id, status, created_at, id);
