DROP INDEX payments_status_time;
DROP INDEX payments_first6;
DROP INDEX payments_order;
DROP INDEX payments_email;
DROP INDEX payments_last4;
CREATE INDEX payments_last4 ON payments (company_id, card_last4);
CREATE INDEX payments_email ON payments (company_id, customer_email);
CREATE INDEX payments_order ON payments (company_id, merchant_order_id);
