-- A payment's screening counts and sums the last 24 hours' payments of its card, e-mail
-- and address: the indexes it reads hold the amount and currency too, so that it reads
-- them alone rather than each counted payment's row. Keep the SQLite twin of this file
-- in step.
DROP INDEX payments_card_velocity;
DROP INDEX payments_ip_velocity;
DROP INDEX payments_email;
CREATE INDEX payments_card_velocity ON payments (company_id, card_fingerprint, created_at) INCLUDE (currency, amount);
CREATE INDEX payments_ip_velocity ON payments (company_id, customer_ip, created_at) INCLUDE (currency, amount);
-- Also the registry's search by e-mail (newest first).
CREATE INDEX payments_email ON payments (company_id, customer_email, created_at, id) INCLUDE (currency, amount);
