-- Batch files of refunds, captures, releases, reversals and payouts (Manual payments).
CREATE TABLE batches (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    created_by BIGINT NOT NULL REFERENCES users (id),
    file_name TEXT NOT NULL,
    -- SHA-256 of the file's bytes, hex: the SMS code of a batch with payouts is bound to it.
    file_hash TEXT NOT NULL,
    -- The file's header: JSON array of its column names.
    header TEXT NOT NULL,
    -- invalid, awaiting_confirmation, processing, paused, done, cancelled
    status TEXT NOT NULL,
    row_count INTEGER NOT NULL,
    error_count INTEGER NOT NULL,
    -- What the rows move: JSON [[kind, currency, minor units, rows], ...], in a fixed order.
    totals TEXT NOT NULL,
    -- The kinds and projects of the rows, comma-separated with commas around (for filters).
    kinds TEXT NOT NULL,
    project_ids TEXT NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    declined INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    confirmed_by BIGINT REFERENCES users (id),
    confirmed_at TIMESTAMP,
    -- The server processing it holds it until then (renewed as it goes).
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX batches_company ON batches (company_id, id);
CREATE INDEX batches_status ON batches (status);

-- The rows of a batch file, valid or not, in file order: each is processed at most once
-- (its idempotency key is batch:<id> / row:<number>).
CREATE TABLE batch_rows (
    batch_id BIGINT NOT NULL REFERENCES batches (id),
    row_number INTEGER NOT NULL,
    -- refund, capture, release, reversal, payout ('' when unreadable)
    kind TEXT NOT NULL,
    -- The cells as typed, card numbers masked: JSON array (the annotated file).
    cells TEXT NOT NULL,
    -- What is wrong with it, column by column (none: valid).
    error TEXT,
    -- The payment it acts on, or (once made) the payout.
    payment_id TEXT,
    project_id BIGINT,
    -- Minor units; none: all that is left.
    amount BIGINT,
    currency TEXT,
    -- A payout's card, sealed with the installation's key; erased once processed.
    card TEXT,
    merchant_order_id TEXT,
    -- pending, succeeded, declined, failed, cancelled
    status TEXT NOT NULL,
    result TEXT,
    done_at TIMESTAMP,
    PRIMARY KEY (batch_id, row_number)
);
CREATE INDEX batch_rows_status ON batch_rows (batch_id, status, row_number);
