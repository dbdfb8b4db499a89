-- Fraud prevention: a company's block and allow lists and its rules, what the rules
-- decided for each payment they matched, the payments they held for review, and the
-- backtests that tried a rule on past payments. Keep the PostgreSQL twin of this file in
-- step.

-- One entry of a block or allow list. `value` is what people read (a card's fingerprint,
-- never its number; an e-mail in lower case; an address or network in CIDR form; a
-- country code; a BIN); an address entry also keeps its first and last address as 32 hex
-- digits (IPv4 mapped into IPv6), so that an address is looked up by range.
CREATE TABLE fraud_list_entries (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    list TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    range_start TEXT,
    range_end TEXT,
    reason TEXT,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    UNIQUE (company_id, kind, value, list)
);
CREATE INDEX fraud_list_ranges ON fraud_list_entries (company_id, kind, range_start);
CREATE INDEX fraud_list_pages ON fraud_list_entries (company_id, id);

-- A rule: a condition in the rules' language, an action, a priority (1 is read first)
-- and whether it is enabled or a draft. Deleted rules are kept for the payments they
-- decided.
CREATE TABLE fraud_rules (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    name TEXT NOT NULL,
    condition TEXT NOT NULL,
    action TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_by BIGINT REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX fraud_rules_company ON fraud_rules (company_id, priority, id);

-- What the rules decided for a payment some rule matched: the action taken, the rule that
-- decided it, and every rule that matched (JSON, in priority order), as they were then.
CREATE TABLE fraud_checks (
    payment_id BIGINT PRIMARY KEY REFERENCES payments (id),
    decision TEXT NOT NULL,
    rule_id BIGINT REFERENCES fraud_rules (id),
    matched TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- A payment a rule held (authorised, not captured) until someone approves it (capture)
-- or declines it (release), or its deadline passes (release).
CREATE TABLE fraud_reviews (
    id INTEGER PRIMARY KEY,
    payment_id BIGINT NOT NULL UNIQUE REFERENCES payments (id),
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    status TEXT NOT NULL,
    reasons TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    decided_by BIGINT REFERENCES users (id),
    decided_at TIMESTAMP,
    note TEXT
);
CREATE INDEX fraud_reviews_queue ON fraud_reviews (company_id, status, due_at, id);

-- A rule tried on the payments of a period: its progress while it runs (a run whose
-- heartbeat stops, because its server stopped, is started again), then its result (JSON:
-- per day, and the confusion table).
CREATE TABLE fraud_backtests (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    created_by BIGINT REFERENCES users (id),
    name TEXT NOT NULL,
    condition TEXT NOT NULL,
    action TEXT NOT NULL,
    project_ids TEXT,
    period_from TIMESTAMP NOT NULL,
    period_to TIMESTAMP NOT NULL,
    status TEXT NOT NULL,
    scanned BIGINT NOT NULL,
    total BIGINT NOT NULL,
    result TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    heartbeat_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX fraud_backtests_company ON fraud_backtests (company_id, id);

-- Velocities count a card's and an address's payments of the last 24 hours (the e-mail's
-- use the registry's index).
CREATE INDEX payments_card_velocity ON payments (company_id, card_fingerprint, created_at);
CREATE INDEX payments_ip_velocity ON payments (company_id, customer_ip, created_at);
