//! Diesel table definitions of the payments domain (migrations in `migrations/payments`).

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
        return_url -> Nullable<Text>,
        link_id -> Nullable<BigInt>,
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
        idempotency_scope -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        entry -> Nullable<Text>,
        reason -> Nullable<Text>,
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
        previous_encrypted -> Nullable<Text>,
        previous_until -> Nullable<Timestamp>,
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
        removed_at -> Nullable<Timestamp>,
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
        endpoint_id -> Nullable<BigInt>,
        resent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    chargebacks (id) {
        id -> BigInt,
        public_id -> Text,
        company_id -> BigInt,
        project_id -> BigInt,
        payment_id -> BigInt,
        operation_id -> BigInt,
        amount -> BigInt,
        currency -> Text,
        reason_code -> Text,
        reason -> Text,
        status -> Text,
        received_at -> Timestamp,
        respond_by -> Timestamp,
        responded_at -> Nullable<Timestamp>,
        responded_by -> Nullable<BigInt>,
        evidence_text -> Nullable<Text>,
        decided_at -> Nullable<Timestamp>,
        reversal_operation_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    chargeback_evidence (id) {
        id -> BigInt,
        chargeback_id -> BigInt,
        file_name -> Text,
        content_type -> Text,
        size_bytes -> BigInt,
        stored_name -> Text,
        sha256 -> Text,
        uploaded_by -> BigInt,
        uploaded_at -> Timestamp,
    }
}

diesel::table! {
    callback_attempts (id) {
        id -> BigInt,
        endpoint_id -> BigInt,
        delivery_id -> Nullable<BigInt>,
        attempted_at -> Timestamp,
        url -> Text,
        status_code -> Nullable<Integer>,
        latency_ms -> Integer,
        error -> Nullable<Text>,
        response_excerpt -> Nullable<Text>,
    }
}

diesel::table! {
    payout_limits (project_id, currency) {
        project_id -> BigInt,
        currency -> Text,
        per_payout -> Nullable<BigInt>,
        per_day -> Nullable<BigInt>,
        updated_at -> Nullable<Timestamp>,
        updated_by -> Nullable<BigInt>,
    }
}

diesel::table! {
    moto_projects (project_id) {
        project_id -> BigInt,
        enabled_by -> Nullable<BigInt>,
        enabled_at -> Timestamp,
    }
}

diesel::joinable!(operations -> payments (payment_id));
diesel::joinable!(ledger_postings -> operations (operation_id));
diesel::joinable!(callback_deliveries -> callback_endpoints (endpoint_id));
diesel::joinable!(callback_attempts -> callback_endpoints (endpoint_id));
diesel::joinable!(chargebacks -> payments (payment_id));
diesel::joinable!(chargeback_evidence -> chargebacks (chargeback_id));

diesel::allow_tables_to_appear_in_same_query!(
    payments,
    operations,
    ledger_postings,
    idempotency_keys,
    project_secrets,
    callback_endpoints,
    callback_deliveries,
    callback_attempts,
    chargebacks,
    chargeback_evidence,
    payout_limits,
    moto_projects,
    payment_links,
    page_styles,
    page_assets,
    page_style_versions,
    project_checkout,
    project_methods,
    fraud_list_entries,
    fraud_rules,
    fraud_checks,
    fraud_reviews,
    fraud_backtests,
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

// The finance positions group postings by their operation's kind.
diesel::allow_columns_to_appear_in_same_group_by_clause!(
    ledger_postings::project_id,
    ledger_postings::currency,
    ledger_postings::account,
    operations::kind,
);

diesel::table! {
    page_assets (id) {
        id -> BigInt,
        company_id -> BigInt,
        project_id -> BigInt,
        content_type -> Text,
        bytes -> Binary,
        sha256 -> Text,
        width -> Integer,
        height -> Integer,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    page_styles (id) {
        id -> BigInt,
        company_id -> BigInt,
        project_id -> BigInt,
        name -> Text,
        design -> Text,
        logo_asset_id -> Nullable<BigInt>,
        background_asset_id -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_by -> Nullable<BigInt>,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    page_style_versions (id) {
        id -> BigInt,
        project_id -> BigInt,
        style_id -> BigInt,
        style_name -> Text,
        version -> Integer,
        design -> Text,
        logo_asset_id -> Nullable<BigInt>,
        background_asset_id -> Nullable<BigInt>,
        reverted_from -> Nullable<Integer>,
        published_by -> Nullable<BigInt>,
        published_at -> Timestamp,
    }
}

diesel::table! {
    project_checkout (project_id) {
        project_id -> BigInt,
        success_url -> Nullable<Text>,
        failure_url -> Nullable<Text>,
        return_url -> Nullable<Text>,
        published_version_id -> Nullable<BigInt>,
        updated_by -> Nullable<BigInt>,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    project_methods (project_id, method, currency) {
        project_id -> BigInt,
        method -> Text,
        currency -> Text,
        min_amount -> Nullable<BigInt>,
        max_amount -> Nullable<BigInt>,
    }
}

diesel::table! {
    payment_links (id) {
        id -> BigInt,
        public_id -> Text,
        company_id -> BigInt,
        project_id -> BigInt,
        currency -> Text,
        amount -> Nullable<BigInt>,
        min_amount -> Nullable<BigInt>,
        max_amount -> Nullable<BigInt>,
        description -> Text,
        merchant_order_id -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        max_payments -> Nullable<Integer>,
        style_id -> Nullable<BigInt>,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        deactivated_by -> Nullable<BigInt>,
        deactivated_at -> Nullable<Timestamp>,
        last_paid_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(payments -> payment_links (link_id));

diesel::table! {
    fraud_list_entries (id) {
        id -> BigInt,
        company_id -> BigInt,
        list -> Text,
        kind -> Text,
        value -> Text,
        range_start -> Nullable<Text>,
        range_end -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        expires_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    fraud_rules (id) {
        id -> BigInt,
        company_id -> BigInt,
        name -> Text,
        condition -> Text,
        action -> Text,
        priority -> Integer,
        status -> Text,
        created_by -> Nullable<BigInt>,
        created_at -> Timestamp,
        updated_by -> Nullable<BigInt>,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    fraud_checks (payment_id) {
        payment_id -> BigInt,
        decision -> Text,
        rule_id -> Nullable<BigInt>,
        matched -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    fraud_reviews (id) {
        id -> BigInt,
        payment_id -> BigInt,
        company_id -> BigInt,
        project_id -> BigInt,
        status -> Text,
        reasons -> Text,
        created_at -> Timestamp,
        due_at -> Timestamp,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<Timestamp>,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    fraud_backtests (id) {
        id -> BigInt,
        company_id -> BigInt,
        created_by -> Nullable<BigInt>,
        name -> Text,
        condition -> Text,
        action -> Text,
        project_ids -> Nullable<Text>,
        period_from -> Timestamp,
        period_to -> Timestamp,
        status -> Text,
        scanned -> BigInt,
        total -> BigInt,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        heartbeat_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(fraud_checks -> payments (payment_id));
diesel::joinable!(fraud_reviews -> payments (payment_id));
