DROP INDEX payments_ip_velocity;
DROP INDEX payments_card_velocity;
DROP TABLE fraud_backtests;
DROP TABLE fraud_reviews;
DROP TABLE fraud_checks;
DROP TABLE fraud_rules;
DROP TABLE fraud_list_entries;
