//! Diesel table definitions shared by both backends (see `migrations/`).

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

diesel::table! {
    payments (id) {
        id -> BigInt,
        public_id -> Text,
        company_id -> BigInt,
        project_id -> BigInt,
        kind -> Text,
        flow -> Text,
        method -> Text,
        status -> Text,
        currency -> Text,
        amount -> BigInt,
        authorized_amount -> BigInt,
        captured_amount -> BigInt,
        refunded_amount -> BigInt,
        charged_back_amount -> BigInt,
        merchant_order_id -> Nullable<Text>,
        description -> Nullable<Text>,
        customer_email -> Nullable<Text>,
        customer_id -> Nullable<Text>,
        customer_country -> Nullable<Text>,
        customer_ip -> Nullable<Text>,
        card_first6 -> Nullable<Text>,
        card_last4 -> Nullable<Text>,
        card_brand -> Nullable<Text>,
        card_expiry -> Nullable<Text>,
        card_fingerprint -> Nullable<Text>,
        decline_code -> Nullable<Text>,
        decline_reason -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    operations (id) {
        id -> BigInt,
        payment_id -> BigInt,
        kind -> Text,
        status -> Text,
        amount -> BigInt,
        currency -> Text,
        decline_code -> Nullable<Text>,
        decline_reason -> Nullable<Text>,
        connector_reference -> Nullable<Text>,
        actor_user_id -> Nullable<BigInt>,
        created_at -> Timestamp,
        completed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    ledger_postings (id) {
        id -> BigInt,
        operation_id -> BigInt,
        payment_id -> BigInt,
        project_id -> BigInt,
        account -> Text,
        currency -> Text,
        amount -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (id) {
        id -> BigInt,
        scope -> Text,
        idempotency_key -> Text,
        request_hash -> Text,
        response_status -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    project_secrets (project_id) {
        project_id -> BigInt,
        secret_encrypted -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    callback_endpoints (id) {
        id -> BigInt,
        project_id -> BigInt,
        event -> Text,
        url -> Text,
        enabled -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    callback_deliveries (id) {
        id -> BigInt,
        project_id -> BigInt,
        payment_id -> BigInt,
        event -> Text,
        url -> Text,
        payload -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        delivered_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(operations -> payments (payment_id));
diesel::joinable!(ledger_postings -> operations (operation_id));
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

diesel::table! {
    analytics_cells (zone, dims, day, project_id, currency, method, country, brand, status, decline) {
        zone -> Text,
        dims -> SmallInt,
        day -> Date,
        project_id -> BigInt,
        currency -> Text,
        method -> Text,
        country -> Text,
        brand -> Text,
        status -> Text,
        decline -> Text,
        payments -> BigInt,
        approved -> BigInt,
        declined -> BigInt,
        captures -> BigInt,
        captured -> BigInt,
        refunds -> BigInt,
        refunded -> BigInt,
        chargebacks -> BigInt,
        charged_back -> BigInt,
        payouts -> BigInt,
        paid_out -> BigInt,
    }
}

diesel::table! {
    analytics_zones (zone) {
        zone -> Text,
        ready_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    analytics_boards (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        query -> Text,
        charts -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    analytics_changes (id) {
        id -> BigInt,
        project_id -> BigInt,
        hour -> Timestamp,
    }
}

diesel::joinable!(user_preferences -> users (user_id));
diesel::joinable!(analytics_boards -> users (user_id));

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
    sms_codes,
    recovery_codes,
    api_tokens,
    one_time_links,
    payments,
    operations,
    ledger_postings,
    idempotency_keys,
    project_secrets,
    callback_endpoints,
    callback_deliveries,
    user_preferences,
    analytics_cells,
    analytics_zones,
    analytics_boards,
    analytics_changes,
);

// The analytics group operations by the dimensions of their payment.
diesel::allow_columns_to_appear_in_same_group_by_clause!(
    payments::project_id,
    payments::currency,
    payments::method,
    payments::customer_country,
    payments::card_brand,
    operations::kind,
);
