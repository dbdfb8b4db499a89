-- The example section's notes: short texts a user leaves for their company. Keep the
-- PostgreSQL twin of this file in step.
CREATE TABLE example_notes (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    author_user_id BIGINT NOT NULL REFERENCES users (id),
    text TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX example_notes_company ON example_notes (company_id, id);
