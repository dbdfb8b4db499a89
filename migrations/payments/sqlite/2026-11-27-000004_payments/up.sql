-- Payments, their operations, the double-entry ledger and idempotency keys.
-- Money is integer minor units of the payment's ISO 4217 currency.
-- Keep the PostgreSQL twin of this file in step.

CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    -- purchase, payout, recurring, payment_link
    kind TEXT NOT NULL,
    -- one_step or two_step (purchases); one_step otherwise
    flow TEXT NOT NULL,
    -- card, bank_transfer, wallet
    method TEXT NOT NULL,
    status TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    authorized_amount BIGINT NOT NULL DEFAULT 0,
    captured_amount BIGINT NOT NULL DEFAULT 0,
    refunded_amount BIGINT NOT NULL DEFAULT 0,
    charged_back_amount BIGINT NOT NULL DEFAULT 0,
    merchant_order_id TEXT,
    description TEXT,
    customer_email TEXT,
    customer_id TEXT,
    customer_country TEXT,
    customer_ip TEXT,
    card_first6 TEXT,
    card_last4 TEXT,
    card_brand TEXT,
    card_expiry TEXT,
    card_fingerprint TEXT,
    decline_code TEXT,
    decline_reason TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX payments_company_time ON payments (company_id, created_at, id);
CREATE INDEX payments_project_time ON payments (project_id, created_at, id);
CREATE INDEX payments_last4 ON payments (company_id, card_last4);
CREATE INDEX payments_email ON payments (company_id, customer_email);
CREATE INDEX payments_order ON payments (company_id, merchant_order_id);

-- sale, auth, capture, cancel, refund, reversal, payout, recurring, chargeback;
-- status: pending (sent to the acquirer), success, declined, failed.
CREATE TABLE operations (
    id INTEGER PRIMARY KEY,
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    decline_code TEXT,
    decline_reason TEXT,
    connector_reference TEXT,
    actor_user_id BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    completed_at TIMESTAMP
);
CREATE INDEX operations_payment ON operations (payment_id, id);
CREATE INDEX operations_pending ON operations (status, created_at);

-- Double entry: the postings of one operation sum to zero per currency. Positive
-- amounts are debits, negative ones credits.
CREATE TABLE ledger_postings (
    id INTEGER PRIMARY KEY,
    operation_id BIGINT NOT NULL REFERENCES operations (id),
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    account TEXT NOT NULL,
    currency TEXT NOT NULL,
    amount BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ledger_postings_operation ON ledger_postings (operation_id);
CREATE INDEX ledger_postings_balance ON ledger_postings (project_id, currency, account);

-- One row per (caller, key): the request's hash and, once done, the answer to repeat.
CREATE TABLE idempotency_keys (
    id INTEGER PRIMARY KEY,
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    response_status INTEGER,
    response_body TEXT,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (scope, idempotency_key)
);
