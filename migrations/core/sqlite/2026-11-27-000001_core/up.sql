-- Core model: companies (merchants), their projects, users, roles and the access state.
-- Timestamps are UTC. Keep the PostgreSQL twin of this file in step.

CREATE TABLE companies (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE projects (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    name TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (company_id, name)
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    email TEXT,
    phone TEXT,
    password_hash TEXT NOT NULL,
    all_projects BOOLEAN NOT NULL DEFAULT TRUE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    language TEXT NOT NULL DEFAULT 'en',
    time_zone TEXT NOT NULL DEFAULT 'UTC',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX users_company ON users (company_id);

-- A built-in role has `builtin` set (its permissions come from the section registry);
-- a custom role lists its permissions in role_permissions.
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    name TEXT NOT NULL,
    builtin TEXT,
    description TEXT NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    UNIQUE (company_id, name),
    UNIQUE (company_id, builtin)
);

CREATE TABLE role_permissions (
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, role_id)
);

-- Used only when users.all_projects is false.
CREATE TABLE user_projects (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id BIGINT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, project_id)
);

-- TOTP state: the secret is stored encrypted; last_accepted_step refuses a replayed code.
CREATE TABLE second_factors (
    user_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    totp_secret_encrypted TEXT,
    enabled_at TIMESTAMP,
    last_accepted_step BIGINT,
    phone_confirmed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- The cookie carries a random token; only its SHA-256 is stored here.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    second_factor_at TIMESTAMP,
    ip TEXT,
    user_agent TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY,
    company_id BIGINT REFERENCES companies (id),
    actor_user_id BIGINT REFERENCES users (id),
    action TEXT NOT NULL,
    target TEXT,
    result TEXT NOT NULL,
    ip TEXT,
    details TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX audit_events_company_time ON audit_events (company_id, created_at);
