-- The hosted Payment Page and what it needs: a project's checkout settings (redirect URLs,
-- accepted methods and currencies with their limits, the published style), the styles a
-- merchant designs (with their uploaded images and every published version), and payment
-- links, each payment of which names its link. Keep the PostgreSQL twin of this file in step.

-- Logos and background images, as stored after they were decoded and encoded again.
CREATE TABLE page_assets (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    content_type TEXT NOT NULL,
    bytes BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX page_assets_project ON page_assets (project_id);

-- A named design of a project's Payment Page; its `design` (JSON) is the draft people edit.
CREATE TABLE page_styles (
    id INTEGER PRIMARY KEY,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    name TEXT NOT NULL,
    design TEXT NOT NULL,
    logo_asset_id BIGINT REFERENCES page_assets (id),
    background_asset_id BIGINT REFERENCES page_assets (id),
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    updated_by BIGINT REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE INDEX page_styles_project ON page_styles (company_id, project_id, id);

-- Every version a project published, as it was published (a revert publishes an old one
-- again as a new version): the history cannot change after the fact.
CREATE TABLE page_style_versions (
    id INTEGER PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects (id),
    style_id BIGINT NOT NULL REFERENCES page_styles (id),
    style_name TEXT NOT NULL,
    version INTEGER NOT NULL,
    design TEXT NOT NULL,
    logo_asset_id BIGINT REFERENCES page_assets (id),
    background_asset_id BIGINT REFERENCES page_assets (id),
    reverted_from INTEGER,
    published_by BIGINT REFERENCES users (id),
    published_at TIMESTAMP NOT NULL,
    UNIQUE (project_id, version)
);

-- A project's checkout: where the customer goes after paying, and the style it pays on.
CREATE TABLE project_checkout (
    project_id BIGINT PRIMARY KEY REFERENCES projects (id),
    success_url TEXT,
    failure_url TEXT,
    return_url TEXT,
    published_version_id BIGINT REFERENCES page_style_versions (id),
    updated_by BIGINT REFERENCES users (id),
    updated_at TIMESTAMP NOT NULL
);

-- The methods and currencies a project accepts, each with its limits (minor units). A
-- project with none listed accepts every method and currency the platform supports.
CREATE TABLE project_methods (
    project_id BIGINT NOT NULL REFERENCES projects (id),
    method TEXT NOT NULL,
    currency TEXT NOT NULL,
    min_amount BIGINT,
    max_amount BIGINT,
    PRIMARY KEY (project_id, method, currency)
);

-- A link a customer pays through on the hosted page: a fixed amount, or one the customer
-- enters between `min_amount` and `max_amount`; at most `max_payments` successful payments
-- (1: single use; none: reusable without limit) until it expires or is deactivated.
CREATE TABLE payment_links (
    id INTEGER PRIMARY KEY,
    public_id TEXT NOT NULL UNIQUE,
    company_id BIGINT NOT NULL REFERENCES companies (id),
    project_id BIGINT NOT NULL REFERENCES projects (id),
    currency TEXT NOT NULL,
    amount BIGINT,
    min_amount BIGINT,
    max_amount BIGINT,
    description TEXT NOT NULL,
    merchant_order_id TEXT,
    expires_at TIMESTAMP,
    max_payments INTEGER,
    style_id BIGINT REFERENCES page_styles (id),
    created_by BIGINT REFERENCES users (id),
    created_at TIMESTAMP NOT NULL,
    deactivated_by BIGINT REFERENCES users (id),
    deactivated_at TIMESTAMP,
    -- Touched by each payment's first write: parallel payments of one link take turns.
    last_paid_at TIMESTAMP
);
CREATE INDEX payment_links_company ON payment_links (company_id, id);

ALTER TABLE payments ADD COLUMN link_id BIGINT REFERENCES payment_links (id);
CREATE INDEX payments_link ON payments (link_id, id);
