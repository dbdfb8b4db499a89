//! Diesel table definitions of the core: companies, projects, users, roles, the second
//! factor, sessions, tokens, audit and preferences (migrations in `migrations/core`).
//! Sections and domain crates define their own tables in their own crates.

diesel::table! {
    companies (id) {
        id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    projects (id) {
        id -> BigInt,
        company_id -> BigInt,
        name -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> BigInt,
        company_id -> BigInt,
        username -> Text,
        display_name -> Text,
        email -> Nullable<Text>,
        phone -> Nullable<Text>,
        password_hash -> Text,
        all_projects -> Bool,
        active -> Bool,
        language -> Text,
        time_zone -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        failed_attempts -> Integer,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    roles (id) {
        id -> BigInt,
        company_id -> BigInt,
        name -> Text,
        builtin -> Nullable<Text>,
        description -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    role_permissions (role_id, permission) {
        role_id -> BigInt,
        permission -> Text,
    }
}

diesel::table! {
    user_roles (user_id, role_id) {
        user_id -> BigInt,
        role_id -> BigInt,
    }
}

diesel::table! {
    user_projects (user_id, project_id) {
        user_id -> BigInt,
        project_id -> BigInt,
    }
}

diesel::table! {
    second_factors (user_id) {
        user_id -> BigInt,
        totp_secret_encrypted -> Nullable<Text>,
        enabled_at -> Nullable<Timestamp>,
        last_accepted_step -> Nullable<BigInt>,
        phone_confirmed_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    sessions (token_hash) {
        token_hash -> Text,
        user_id -> BigInt,
        created_at -> Timestamp,
        last_seen_at -> Timestamp,
        expires_at -> Timestamp,
        second_factor_at -> Nullable<Timestamp>,
        ip -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        stage -> Text,
    }
}

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        company_id -> Nullable<BigInt>,
        actor_user_id -> Nullable<BigInt>,
        action -> Text,
        target -> Nullable<Text>,
        result -> Text,
        ip -> Nullable<Text>,
        details -> Text,
        created_at -> Timestamp,
        seal -> Nullable<Text>,
    }
}

diesel::table! {
    audit_chain (id) {
        id -> Integer,
        last_event_id -> BigInt,
        last_seal -> Text,
        events -> BigInt,
    }
}

diesel::table! {
    sms_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        subject -> Text,
        code_hash -> Text,
        attempts -> Integer,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    recovery_codes (id) {
        id -> BigInt,
        user_id -> BigInt,
        code_hash -> Text,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    api_tokens (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        scopes -> Text,
        project_ids -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
        last_used_at -> Nullable<Timestamp>,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    one_time_links (id) {
        id -> BigInt,
        user_id -> BigInt,
        purpose -> Text,
        token_hash -> Text,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        used_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(projects -> companies (company_id));
diesel::joinable!(api_tokens -> users (user_id));
diesel::joinable!(users -> companies (company_id));
diesel::joinable!(roles -> companies (company_id));
diesel::joinable!(role_permissions -> roles (role_id));
diesel::joinable!(user_roles -> users (user_id));
diesel::joinable!(user_roles -> roles (role_id));
diesel::joinable!(user_projects -> users (user_id));
diesel::joinable!(user_projects -> projects (project_id));
diesel::joinable!(sessions -> users (user_id));
diesel::table! {
    user_preferences (user_id, preference) {
        user_id -> BigInt,
        preference -> Text,
        value -> Text,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(user_preferences -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    companies,
    projects,
    users,
    roles,
    role_permissions,
    user_roles,
    user_projects,
    second_factors,
    sessions,
    audit_events,
    audit_chain,
    sms_codes,
    recovery_codes,
    api_tokens,
    one_time_links,
    user_preferences,
);
