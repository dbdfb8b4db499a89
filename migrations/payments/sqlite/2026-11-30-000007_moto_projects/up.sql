-- Projects that take card payments by hand (MO/TO: the customer gives the card by phone
-- or mail, without 3-D Secure). Off unless a project admin turns it on.
CREATE TABLE moto_projects (
    project_id BIGINT PRIMARY KEY REFERENCES projects (id),
    enabled_by BIGINT REFERENCES users (id),
    enabled_at TIMESTAMP NOT NULL
);
