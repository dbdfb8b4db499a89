-- API tokens, one-time set-password links and support-bot link codes.
-- Keep the PostgreSQL twin of this file in step.

-- Only the SHA-256 of a token is kept. `scopes` is a space-separated list of permission
-- codes; `project_ids` a comma-separated list, or NULL for every project of the user.
CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    scopes TEXT NOT NULL,
    project_ids TEXT,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

-- One-time links: `purpose` is 'set_password' or 'support_bot'.
CREATE TABLE one_time_links (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP
);
CREATE INDEX one_time_links_user ON one_time_links (user_id, purpose);
