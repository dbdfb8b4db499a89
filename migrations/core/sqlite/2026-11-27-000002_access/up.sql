-- Access control: lockout, the second-factor stage of a session, SMS codes, recovery codes.
-- Keep the PostgreSQL twin of this file in step.

-- Consecutive failed sign-ins (password or code); at the limit the account is locked.
ALTER TABLE users ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until TIMESTAMP;

-- 'second_factor' while the password was right but the code is still to come; 'active' then.
ALTER TABLE sessions ADD COLUMN stage TEXT NOT NULL DEFAULT 'active';

-- One-time codes sent by SMS. `subject` binds a confirmation code to what it confirms
-- (a canonical description of the operation); only the hash of the code is kept.
CREATE TABLE sms_codes (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    code_hash TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX sms_codes_user ON sms_codes (user_id, purpose, created_at);

-- Single-use recovery codes of the second factor, hashed.
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);
