-- Reports built in the background, and the schedules that queue them (Reports).
CREATE TABLE report_schedules (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    created_by BIGINT NOT NULL REFERENCES users (id),
    report_type TEXT NOT NULL,
    -- JSON array of project ids; NULL: every project (its creator sees them all).
    project_ids TEXT,
    -- JSON object: filter id -> value.
    filters TEXT NOT NULL,
    -- JSON array of column ids, in the file's order.
    column_ids TEXT NOT NULL,
    -- csv, xlsx
    format TEXT NOT NULL,
    -- daily, weekly, monthly
    frequency TEXT NOT NULL,
    -- The hour and minute it runs at, in its time zone.
    run_at TEXT NOT NULL,
    time_zone TEXT NOT NULL,
    -- E-mail addresses told when a report is ready, comma-separated ('' for none).
    recipients TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    next_run_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX report_schedules_company ON report_schedules (company_id, id);
CREATE INDEX report_schedules_due ON report_schedules (active, next_run_at);

CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    created_by BIGINT NOT NULL REFERENCES users (id),
    schedule_id BIGINT REFERENCES report_schedules (id) ON DELETE SET NULL,
    report_type TEXT NOT NULL,
    -- The period: whole days in time_zone, both included.
    first_day DATE NOT NULL,
    last_day DATE NOT NULL,
    time_zone TEXT NOT NULL,
    project_ids TEXT,
    filters TEXT NOT NULL,
    column_ids TEXT NOT NULL,
    format TEXT NOT NULL,
    -- queued, running, ready, failed, cancelled, expired
    status TEXT NOT NULL,
    rows_done BIGINT NOT NULL DEFAULT 0,
    -- How far into the period the rows reached, in thousandths (while running).
    progress INTEGER NOT NULL DEFAULT 0,
    size_bytes BIGINT,
    error TEXT,
    -- The server building it (a random token) holds it until lease_until, renewed as it goes.
    lease_token TEXT,
    lease_until TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    finished_at TIMESTAMP,
    -- When its file is removed (ready reports only).
    expires_at TIMESTAMP,
    -- When its schedule's recipients were told it ended (scheduled reports only).
    mailed_at TIMESTAMP
);
CREATE INDEX reports_company ON reports (company_id, id);
CREATE INDEX reports_status ON reports (status);
CREATE INDEX reports_schedule ON reports (schedule_id);
