DROP INDEX payments_card_velocity;
DROP INDEX payments_ip_velocity;
DROP INDEX payments_email;
CREATE INDEX payments_card_velocity ON payments (company_id, card_fingerprint, created_at);
CREATE INDEX payments_ip_velocity ON payments (company_id, customer_ip, created_at);
CREATE INDEX payments_email ON payments (company_id, customer_email, created_at, id);
