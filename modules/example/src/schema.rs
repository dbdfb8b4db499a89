//! The section's tables (migrations in `migrations/example/{sqlite,postgres}`). A section
//! defines only its own tables here; core's (`companies`, `users`, …) are in
//! `dashboard_core::schema`, the payments' in `dashboard_payments_domain::schema`.

diesel::table! {
    example_notes (id) {
        id -> BigInt,
        company_id -> BigInt,
        author_user_id -> BigInt,
        text -> Text,
        created_at -> Timestamp,
    }
}
