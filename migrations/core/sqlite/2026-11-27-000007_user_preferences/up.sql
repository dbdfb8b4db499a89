-- A user's saved settings of the sections (for example the columns of a list),
-- one JSON value per key. Keep the PostgreSQL twin of this file in step.
CREATE TABLE user_preferences (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    preference TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (user_id, preference)
);
