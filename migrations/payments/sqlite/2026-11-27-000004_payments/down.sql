DROP TABLE idempotency_keys;
DROP TABLE ledger_postings;
DROP TABLE operations;
DROP TABLE payments;
