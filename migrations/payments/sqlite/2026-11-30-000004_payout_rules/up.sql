-- Payouts are checked against the project's available balance and limits, per currency.
-- A project's row here is also what payouts of that project and currency lock while
-- they are checked and started, so that parallel payouts cannot overdraw together: every
-- payout writes it (with no limits when none were set).
CREATE TABLE payout_limits (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    currency TEXT NOT NULL,
    -- Minor units; NULL: no limit.
    per_payout BIGINT,
    per_day BIGINT,
    updated_at TIMESTAMP,
    updated_by BIGINT REFERENCES users (id),
    PRIMARY KEY (project_id, currency)
);

-- The available balance is a sum over the project's postings: with the amount in the
-- index it is read from the index alone.
DROP INDEX ledger_postings_balance;
CREATE INDEX ledger_postings_balance ON ledger_postings (project_id, currency, account, amount);
