DROP INDEX ledger_postings_balance;
CREATE INDEX ledger_postings_balance ON ledger_postings (project_id, currency, account);
DROP TABLE payout_limits;
