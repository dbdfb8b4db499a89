DROP INDEX payments_link;
ALTER TABLE payments DROP COLUMN link_id;
DROP TABLE payment_links;
DROP TABLE project_methods;
DROP TABLE project_checkout;
DROP TABLE page_style_versions;
DROP TABLE page_styles;
DROP TABLE page_assets;
