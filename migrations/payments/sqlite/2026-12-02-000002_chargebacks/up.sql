-- Chargebacks as cases the merchant answers: each chargeback the acquirer reports (an
-- operation of the payment) opens a case with a deadline; the merchant accepts it or
-- disputes it with evidence; the acquirer decides a dispute (won: the money comes back
-- with an operation of its own). Keep the PostgreSQL twin of this file in step.
CREATE TABLE chargebacks (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    payment_id BIGINT NOT NULL REFERENCES payments (id),
    operation_id BIGINT NOT NULL REFERENCES operations (id),
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    reason_code TEXT NOT NULL,
    reason TEXT NOT NULL,
    -- new, accepted, disputed, won or lost
    status TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL,
    -- 4 business days after it was received: then the acquirer takes silence as acceptance.
    respond_by TIMESTAMP NOT NULL,
    responded_at TIMESTAMP,
    responded_by BIGINT REFERENCES users (id),
    evidence_text TEXT,
    decided_at TIMESTAMP,
    -- The operation that gave the money back when the dispute was won.
    reversal_operation_id BIGINT REFERENCES operations (id)
);
CREATE INDEX chargebacks_by_deadline ON chargebacks (company_id, respond_by, id);
CREATE INDEX chargebacks_open ON chargebacks (status, respond_by);
CREATE INDEX chargebacks_payment ON chargebacks (payment_id);

-- Files the merchant gives as evidence, stored outside the web root under random names.
CREATE TABLE chargeback_evidence (
    id INTEGER PRIMARY KEY,
    chargeback_id BIGINT NOT NULL REFERENCES chargebacks (id),
    file_name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    stored_name TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_by BIGINT NOT NULL REFERENCES users (id),
    uploaded_at TIMESTAMP NOT NULL
);
CREATE INDEX chargeback_evidence_case ON chargeback_evidence (chargeback_id, id);

-- Chargebacks reported before cases existed: closed, as the acquirer took them.
INSERT INTO chargebacks (public_id, company_id, project_id, payment_id, operation_id, amount, currency,
                         reason_code, reason, status, received_at, respond_by)
SELECT 'cb_' || o.id, p.company_id, p.project_id, o.payment_id, o.id, o.amount, o.currency,
       COALESCE(o.decline_code, ''), COALESCE(o.decline_reason, ''), 'accepted', o.created_at, o.created_at
FROM operations o JOIN payments p ON p.id = o.payment_id
WHERE o.kind = 'chargeback';
